"""Read the committed dashboards back as data: panels, queries, metric names, exemptions.

The tests judge the generated JSON (what Grafana imports), not the Python that made it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.config import recording_rules
from exporter.catalog import by_name, series_names
from lab import panels
from loadgen.metrics import LoadMetrics

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "dashboards" / "out"

# Series Prometheus itself creates: the scrape health of every target and the state of
# every alert. Not exporter families, but every Prometheus has them.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})

# Queries that legitimately select no `$instance`, by metric (documented in
# dashboards/queries.py): recorded `cluster:*` series aggregate members away, `ALERTS` is the
# cluster's alerts, and the load generator is a client process, not a member.
INSTANCE_EXEMPT_PREFIXES = ("cluster:", "ALERTS", "raftmon_loadgen_")

_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = frozenset({"or", "and", "unless", "bool", "offset"})


@dataclass(frozen=True)
class Query:
    """One PromQL expression found in a dashboard, with where it came from."""

    board: str  # dashboard uid
    panel: str  # panel title, annotation name or variable name
    ref: str  # refId, "annotation" or "variable"
    expr: str

    def __str__(self) -> str:
        return f"{self.board} / {self.panel} / {self.ref}"


def load_boards(out: Path = OUT) -> dict[str, dict[str, Any]]:
    """Board name -> parsed JSON of every committed dashboard."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def iter_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(board: dict[str, Any]) -> list[Query]:
    """The PromQL of every panel target (not variables or annotations)."""
    return [
        Query(board["uid"], panel["title"], target["refId"], target["expr"])
        for panel in iter_panels(board)
        for target in panel.get("targets", [])
    ]


def annotation_queries(board: dict[str, Any]) -> list[Query]:
    return [
        Query(board["uid"], item["name"], "annotation", item["expr"])
        for item in board["annotations"]["list"]
        if "expr" in item
    ]


def variable_queries(board: dict[str, Any]) -> list[Query]:
    """The selector inside each `label_values(selector, label)` variable query."""
    out = []
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"])
        assert match, f"unexpected variable query {var['query']!r}"
        out.append(Query(board["uid"], var["name"], "variable", match.group(1)))
    return out


def all_queries(boards: dict[str, dict[str, Any]]) -> list[Query]:
    return [
        q
        for board in boards.values()
        for q in (*panel_queries(board), *annotation_queries(board), *variable_queries(board))
    ]


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, matchers) of every `metric{...}` in an expression."""
    return _SELECTOR.findall(expr)


def bare_metrics(expr: str) -> list[str]:
    """Identifiers that are neither functions, keywords, grouping labels nor `metric{...}`.

    A metric written without braces would escape the variable checks; this finds it.
    """
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    found = []
    for match in _IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith(("(", "{")) or match.group() in _KEYWORDS:
            continue
        found.append(match.group())
    return found


def metric_names(expr: str) -> set[str]:
    return {metric for metric, _ in selectors(expr)}


def loadgen_series() -> set[str]:
    """Sample names the load generator exposes (children bound so histograms show samples)."""
    metrics = LoadMetrics()
    metrics.observe("put", "success", 0.001)
    metrics.watch_latency.observe(0.001)
    return {
        sample.name
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def known_series() -> set[str]:
    """Every series a query may select: exporter catalog, load generator, recording rules."""
    return series_names() | loadgen_series() | set(recording_rules()) | PROMETHEUS_SERIES


def family_of(series: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix):
            try:
                return by_name(series[: -len(suffix)]).name
            except KeyError:
                pass
    return series


def substitute(expr: str, *, rate: str, cluster: str, instance: str) -> str:
    """Replace Grafana's variables the way Grafana would, with the given values.

    The lab's dashboard checks fill them with the same function (lab.panels), so a
    query means the same here and there; an unknown variable fails the test.
    """
    try:
        return panels.substitute(expr, cluster=cluster, instance=instance, rate=rate)
    except panels.UnknownVariable as err:
        raise AssertionError(str(err)) from None
