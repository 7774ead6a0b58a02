"""A panel's data as Grafana's Prometheus datasource and transformations hand it to the panel.

Prometheus answers are reshaped here, in Python, so the page's script only draws:
- `time_series` targets become named series on one time grid (the panel's step);
- `heatmap` targets become per-bucket rates: Prometheus' cumulative `le` buckets sorted by
  bound and de-accumulated, as the datasource's heatmap format does;
- `table` targets (instant, at the end of the range) become rows of labels and a value
  (`Value`, or `Value #<refId>` when the panel has several targets), then the panel's
  `merge` and `organize` transformations run on them.
"""

from __future__ import annotations

import math
from typing import Any

from dashboards.html.grafana import legend


def time_grid(start: float, end: float, step: float) -> list[float]:
    """Grafana aligns a range query's start to its step; points every step up to `end`."""
    first = math.floor(start / step) * step
    count = max(1, int((end - first) / step) + 1)
    return [round(first + i * step, 3) for i in range(count)]


def _number(text: str) -> float | None:
    """A sample for the page: 6 significant digits (a chart cannot show more; the page is
    half the size), and None where JSON has no number (NaN, infinities)."""
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else float(f"{value:.6g}")


def series(
    result: list[dict[str, Any]], times: list[float], fmt: str, ref: str
) -> list[dict[str, Any]]:
    """Range-query results on the grid `times` (None where a series has no point)."""
    index = {t: i for i, t in enumerate(times)}
    out = []
    for item in result:
        values: list[float | None] = [None] * len(times)
        for t, v in item.get("values", []):
            i = index.get(round(float(t), 3))
            if i is not None:
                values[i] = _number(v)
        labels = item.get("metric", {})
        out.append({"name": legend(fmt, labels), "labels": labels, "ref": ref, "values": values})
    return out


def _bound(le: str) -> float:
    return math.inf if le in ("+Inf", "Inf") else float(le)


def heatmap(result: list[dict[str, Any]], times: list[float]) -> dict[str, Any]:
    """Cumulative `le` buckets -> one row per bucket holding only its own share."""
    rows = sorted(series(result, times, "{{le}}", "A"), key=lambda s: _bound(s["name"]))
    below: list[float | None] = [0.0] * len(times)
    buckets = []
    for row in rows:
        own = [
            None if v is None else max(0.0, v - (b or 0.0))
            for v, b in zip(row["values"], below, strict=True)
        ]
        below = row["values"]
        buckets.append({"le": row["name"], "values": own})
    return {"buckets": buckets}


def table_rows(result: list[dict[str, Any]], value_column: str) -> list[dict[str, Any]]:
    """An instant query with `format: table`: one row per series, labels as columns."""
    rows = []
    for item in result:
        row: dict[str, Any] = {"Time": float(item["value"][0])}
        row.update(item.get("metric", {}))
        row[value_column] = _number(item["value"][1])
        rows.append(row)
    return rows


# Not join keys: the sample time, and the metric name, which differs between queries by
# design (several metrics about the same members merged into one row per member).
_NOT_KEYS = {"Time", "__name__"}


def merge(tables: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Grafana's `merge`: rows of several queries whose shared label values agree become one."""
    merged: list[dict[str, Any]] = []
    for table in tables:
        for row in table:
            for existing in merged:
                shared = set(row) & set(existing) - _NOT_KEYS
                same = all(row[k] == existing[k] for k in shared if not str(k).startswith("Value"))
                clash = any(k in existing for k in row if str(k).startswith("Value"))
                if same and not clash:
                    existing.update(row)
                    break
            else:
                merged.append(dict(row))
    return merged


def organize(rows: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """Grafana's `organize`: drop `excludeByName`, order by `indexByName`, rename."""
    exclude = {k for k, v in (options.get("excludeByName") or {}).items() if v}
    order = options.get("indexByName") or {}
    rename = options.get("renameByName") or {}
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns and k not in exclude]
    first_seen = {c: i for i, c in enumerate(columns)}
    columns.sort(key=lambda c: order.get(c, len(order) + first_seen[c]))
    return {
        "columns": [rename.get(c) or c for c in columns],
        "fields": columns,
        "rows": [[row.get(c) for c in columns] for row in rows],
    }


def table(
    results: dict[str, list[dict[str, Any]]], transformations: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every target's instant rows through the panel's transformations, in order."""
    several = len(results) > 1
    tables = [
        table_rows(result, f"Value #{ref}" if several else "Value")
        for ref, result in results.items()
    ]
    rows: list[dict[str, Any]] = [r for t in tables for r in t]
    options: dict[str, Any] = {}
    for step in transformations:
        if step.get("id") == "merge":
            rows = merge(tables)
        elif step.get("id") == "organize":
            options = step.get("options") or {}
    return organize(rows, options)
