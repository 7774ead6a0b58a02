// The type a dashboard JSON file must have: Grafana's published `Dashboard` (@grafana/schema),
// read as JSON. tests/dashboards/test_grafana_schema.py assigns each dashboards/out/*.json to it
// as an object literal, so tsc reports unknown fields (excess properties), wrong types, missing
// required fields and values outside an enum.
import type { AnnotationQuery, Dashboard, VariableModel } from '@grafana/schema';

// JSON cannot name a TypeScript enum member: a string enum (ThresholdsMode, FieldColorModeId,
// MappingType, ...) is read as the union of its values, which is what Grafana stores.
type Wire<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends readonly (infer U)[]
      ? Wire<U>[]
      : T extends object
        ? { [K in keyof T]: Wire<T[K]> }
        : T;

// Two documented gaps of the generated types, each a field Grafana itself writes:
// - Prometheus annotation queries keep their query at the annotation's top level (Grafana's
//   Prometheus data source reads and saves them there; the type knows only `target`);
// - a query variable's `definition`, the query text Grafana's variable editor lists and saves.
interface PrometheusAnnotationFields {
  expr?: string;
  step?: string;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}
interface QueryVariableFields {
  definition?: string;
}

export type DashboardJSON = Omit<Wire<Dashboard>, 'annotations' | 'templating'> & {
  annotations?: { list?: Array<Wire<AnnotationQuery> & PrometheusAnnotationFields> };
  templating?: { list?: Array<Wire<VariableModel> & QueryVariableFields> };
};
