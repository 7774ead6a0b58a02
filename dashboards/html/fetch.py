"""Ask the run's Prometheus every question a board asks, as Grafana would for that run.

`Source` is anything with Prometheus' HTTP API under `api(path, **params)` (the lab's
`lab.prom.Prometheus` is one; `HttpSource` is the plain client `python -m dashboards.html`
uses). `board_data` returns a board's panels with their frames (see frames.py) and its
annotations as time regions; a query Prometheus rejects becomes the panel's error, shown
on the panel as Grafana shows one, never an exception.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from dashboards.html import frames
from dashboards.html.grafana import (
    PAGE_WIDTH_PX,
    RunRange,
    UnknownVariable,
    Variables,
    legend,
    panel_width_px,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class Source(Protocol):
    """Prometheus' HTTP API: `api("query_range", query=..., ...)` -> the `data` member."""

    def api(self, path: str, **params: str) -> Any: ...


class HttpSource:
    """A Prometheus at `url`, over plain HTTP (GET /api/v1/<path>)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                data = json.loads(answer.read())
        except urllib.error.HTTPError as err:  # 400/422: Prometheus says why in the body
            data = json.loads(err.read() or b"{}")
        if data.get("status") != "success":
            raise ValueError(f"{path}: {data.get('error', data)}")
        return data["data"]


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (`1s`, `1m30s`, `500ms`)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def scrape_interval(source: Source, default: float = 15.0) -> float:
    """The Prometheus' global scrape interval: what a Grafana datasource for it should set."""
    try:
        config = yaml.safe_load(source.api("status/config")["yaml"])
        return parse_duration(str(config["global"]["scrape_interval"]))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return default


def variables(source: Source, board: dict[str, Any], cluster: str, rng: RunRange) -> Variables:
    """Fill the board's variable bar for `cluster`; the members found are shown for "All"."""
    shown = {"datasource": "prometheus (this run's)", "cluster": cluster, "instance": "All"}
    for var in board.get("templating", {}).get("list", []):
        if var.get("name") != "instance" or not var.get("query"):
            continue
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", str(var["query"]).strip())
        if match is None:
            continue
        selector = Variables(cluster).fill(match.group(1), 1.0, 1.0)
        try:
            found = source.api(
                f"label/{match.group(2)}/values",
                **{"match[]": selector, "start": str(rng.start), "end": str(rng.end)},
            )
        except (OSError, ValueError):
            found = []
        if found:
            shown["instance"] = f"All ({', '.join(sorted(found))})"
    return Variables(cluster=cluster, shown=shown)


def _max_points(panel: dict[str, Any]) -> int:
    return int(panel.get("maxDataPoints") or panel_width_px(panel))


def panel_data(
    source: Source, panel: dict[str, Any], rng: RunRange, var: Variables
) -> dict[str, Any]:
    """One panel's frames for the run, or its `errors`."""
    interval = rng.interval(_max_points(panel))
    rate = rng.rate_interval(interval)
    out: dict[str, Any] = {
        key: panel.get(key)
        for key in ("id", "type", "title", "description", "gridPos", "fieldConfig", "options")
    }
    out.update(interval=interval, rateInterval=rate, errors=[], queries=[])
    times = frames.time_grid(rng.start, rng.end, interval)
    instant: dict[str, list[dict[str, Any]]] = {}
    found: list[dict[str, Any]] = []
    for target in panel.get("targets", []):
        if target.get("hide") or "expr" not in target:
            continue
        ref = str(target.get("refId", "A"))
        try:
            expr = var.fill(str(target["expr"]), interval, rate)
        except UnknownVariable as err:
            out["errors"].append(str(err))
            continue
        out["queries"].append(expr)
        fmt = target.get("format", "time_series")
        try:
            if target.get("instant") or fmt == "table":
                instant[ref] = source.api("query", query=expr, time=str(rng.end))["result"]
                continue
            result = source.api(
                "query_range",
                query=expr,
                start=str(times[0]),
                end=str(times[-1]),
                step=str(interval),
            )["result"]
        except (OSError, ValueError) as err:
            out["errors"].append(f"{ref}: {err}")
            continue
        if fmt == "heatmap":
            out["heatmap"] = frames.heatmap(result, times)
        else:
            found += frames.series(result, times, str(target.get("legendFormat", "")), ref)
    out["times"] = times
    out["series"] = found
    if instant:
        out["table"] = frames.table(instant, panel.get("transformations") or [])
    return out


def annotation_data(
    source: Source, item: dict[str, Any], rng: RunRange, var: Variables
) -> dict[str, Any]:
    """A Prometheus annotation: each series' points, joined into regions where contiguous.

    The step is the board's interval at full width (finer than the annotation's own 10 s
    on a run of a minute or two, so a region starts within a scrape of its event).
    """
    interval = rng.interval(PAGE_WIDTH_PX)
    out: dict[str, Any] = {
        "name": item.get("name", ""),
        "color": item.get("iconColor", "red"),
        "regions": [],
        "errors": [],
    }
    try:
        expr = var.fill(str(item["expr"]), interval, rng.rate_interval(interval))
        result = source.api(
            "query_range",
            query=expr,
            start=str(rng.start),
            end=str(rng.end),
            step=str(interval),
        )["result"]
    except (OSError, ValueError) as err:
        out["errors"].append(str(err))
        return out
    for s in result:
        labels = s.get("metric", {})
        title = legend(str(item.get("titleFormat", "")), labels) or out["name"]
        text = legend(str(item.get("textFormat", "")), labels)
        points = [float(t) for t, _ in s.get("values", [])]
        start = prev = points[0] if points else None
        for t in [*points[1:], None]:
            if t is not None and prev is not None and t - prev <= interval * 1.5:
                prev = t
                continue
            out["regions"].append({"from": start, "to": prev, "title": title, "text": text})
            start = prev = t
    return out


def board_data(
    source: Source, board: dict[str, Any], rng: RunRange, cluster: str, pool: Executor
) -> dict[str, Any]:
    """Every panel and annotation of `board` for `cluster` over `rng`."""
    var = variables(source, board, cluster, rng)
    panels = [p for top in board.get("panels", []) for p in [top, *top.get("panels", [])]]
    drawn = [pool.submit(panel_data, source, p, rng, var) for p in panels]
    notes = [
        pool.submit(annotation_data, source, a, rng, var)
        for a in board.get("annotations", {}).get("list", [])
        if a.get("expr") and a.get("enable", True)
    ]
    return {
        "uid": board.get("uid", ""),
        "title": board.get("title", ""),
        "variables": var.shown,
        "panels": [f.result() for f in drawn],
        "annotations": [f.result() for f in notes],
    }
