"""Validate a manifest as the Kubernetes API server would against a CRD's structural schema.

jsonschema checks the OpenAPI v3 keywords; this module adds what Kubernetes does beyond them
and what it leaves out:

- unknown fields: the API server *prunes* fields a structural schema does not declare, so a
  typo (`groupby`) is dropped silently and the resource does something else. Here every
  object without `additionalProperties` or `x-kubernetes-preserve-unknown-fields` is closed,
  and an unknown field is an error;
- `nullable: true` admits null; `x-kubernetes-int-or-string` admits an integer or a string;
- `x-kubernetes-list-type: set` wants unique items, `map` unique `x-kubernetes-list-map-keys`;
- `pattern` is a Go (RE2) regular expression: `^(?i)...` becomes Python's `(?i)^...`;
- `x-kubernetes-validations` (CEL) cannot be evaluated here: a value under such a rule is an
  error, so a resource never passes a rule nobody checked;
- `metadata` is ObjectMeta: a DNS-subdomain name, valid label keys and values, string
  annotations, nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, ValidationError, validators

SCHEMAS_DIR = Path(__file__).resolve().parent / "prometheus-operator"

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A label key is an optional DNS-subdomain prefix and a slash, then a name of at most 63.
_LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

# The part of ObjectMeta a manifest someone applies may set.
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL},
        "labels": {
            "type": "object",
            "propertyNames": {"pattern": _LABEL_KEY, "maxLength": 316},
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": _LABEL_VALUE},
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"pattern": _LABEL_KEY},
            "additionalProperties": {"type": "string"},
        },
    },
}


@dataclass(frozen=True)
class CRDSchema:
    """One served version of a CRD: what apiVersion and kind it takes, and its schema."""

    group: str
    kind: str
    version: str
    operator_version: str
    schema: dict[str, Any]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@cache
def load(kind: str, version: str) -> CRDSchema:
    """The stored schema of `kind` at `version` (files written by extract.py)."""
    doc = json.loads((SCHEMAS_DIR / f"{kind.lower()}.{version}.json").read_text())
    return CRDSchema(
        group=doc["group"],
        kind=doc["kind"],
        version=doc["version"],
        operator_version=doc["operatorVersion"],
        schema=doc["openAPIV3Schema"],
    )


def structural(schema: Any) -> Any:
    """A copy of `schema` with Kubernetes' pruning and nullability spelled as JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = structural(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [structural(sub) for sub in value]
        else:
            out[key] = value
    is_object = out.get("type") == "object" or "properties" in out
    if (
        is_object
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False  # pruned by the API server
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _go_regex(pattern: str) -> re.Pattern[str]:
    # RE2 accepts flags anywhere; Python wants global flags first.
    if pattern.startswith("^(?i)"):
        pattern = "(?i)^" + pattern[len("^(?i)") :]
    return _compiled(pattern)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _go_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _list_type(
    validator: Any, list_type: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, list):
        return
    if list_type == "set":
        seen = [json.dumps(item, sort_keys=True) for item in instance]
        dupes = sorted({item for item in seen if seen.count(item) > 1})
        if dupes:
            yield ValidationError(f"x-kubernetes-list-type set has duplicates: {dupes}")
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        tuples = [
            tuple(item.get(k) for k in keys) if isinstance(item, dict) else None
            for item in instance
        ]
        dupes = sorted({repr(t) for t in tuples if tuples.count(t) > 1})
        if dupes:
            yield ValidationError(f"x-kubernetes-list-type map: duplicate keys {keys}={dupes}")


def _cel(
    validator: Any, rules: list[dict[str, Any]], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    texts = [rule.get("rule") for rule in rules]
    yield ValidationError(f"x-kubernetes-validations (CEL) not evaluated here: {texts}")


def _property_names(
    validator: Any, names: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # Draft 4 has no propertyNames; ObjectMeta needs it for label and annotation keys.
    if isinstance(instance, dict):
        for key in instance:
            yield from validator.descend(key, names, path=key)


KubernetesValidator = validators.extend(
    Draft4Validator,
    {
        "pattern": _pattern,
        "propertyNames": _property_names,
        "x-kubernetes-list-type": _list_type,
        "x-kubernetes-validations": _cel,
    },
)


def _format(error: ValidationError, prefix: str) -> str:
    path = prefix + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    message = error.message
    if error.validator == "additionalProperties" and error.validator_value is False:
        message += " (an unknown field: Kubernetes would prune it silently)"
    return f"{path or '.'}: {message}"


def validate_fragment(instance: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Errors of `instance` against one (sub-)schema of a CRD, as readable `path: message`."""
    checker = KubernetesValidator(structural(schema))
    errors = sorted(checker.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    return [_format(error, where) for error in errors]


def validate(manifest: Any, crd: CRDSchema) -> list[str]:
    """Every reason the API server would reject or silently change `manifest`."""
    if not isinstance(manifest, dict):
        return [f".: a manifest is an object, not {type(manifest).__name__}"]
    errors = []
    if manifest.get("apiVersion") != crd.api_version:
        errors.append(f".apiVersion: {manifest.get('apiVersion')!r} is not {crd.api_version!r}")
    if manifest.get("kind") != crd.kind:
        errors.append(f".kind: {manifest.get('kind')!r} is not {crd.kind!r}")
    root = dict(crd.schema)
    root["properties"] = {**root["properties"], "metadata": OBJECT_META}
    root["required"] = sorted({*root.get("required", []), "metadata"})
    return errors + validate_fragment(manifest, root)
