"""House style for raftmon boards: every panel is built by a factory here.

Board files (`*.dashboard.py`) stay declarative: they pick factories, write the PromQL
and arrange rows. The rules every panel obeys are enforced by construction here and
checked again by tests/dashboards:

- only modern Grafana 9+ panel types: timeseries, stat, table, heatmap, state-timeline;
- a title phrased as the operator's question, a description, and a unit in
  `fieldConfig.defaults.unit` (every factory takes `unit` as a required argument);
- every panel and query points at the `${datasource}` variable;
- threshold lines are given as `Line`s whose values the boards read with
  `dashboards.queries.threshold(...)` from the mixin config, never as literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import attr
from grafanalib.core import (
    Annotations,
    Dashboard,
    DashboardLink,
    GridPos,
    Heatmap,
    Stat,
    StateTimeline,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
    YAxis,
)

from dashboards.queries import cluster, member, mixin, threshold

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DATASOURCE",
    "FAULTS",
    "SCHEMA_VERSION",
    "Line",
    "Q",
    "board",
    "board_annotations",
    "fault_state_panel",
    "heatmap",
    "latency_panel",
    "layout",
    "per_member",
    "stat",
    "state_timeline",
    "table",
    "threshold_line",
    "tier_lines",
    "timeseries",
    "wal_fsync_panel",
    "yes_no",
]

# Grafana 9.0's dashboard schema: importable by 9.0 and migrated forward by later releases.
SCHEMA_VERSION = 36

# Every panel, query, variable and annotation reads from the datasource variable.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Q:
    """One query of a panel: PromQL and the legend Grafana shows for each series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """A threshold drawn on a panel: above `value` the series turns `color`."""

    value: float
    color: str = "red"


def per_member(metric: str, what: str = "", *, fn: str = "rate") -> Q:
    """`fn(metric{member}[$__rate_interval])`, one series per member (and any other labels
    the metric keeps), its legend `{{instance}} what`: the most common query of the boards."""
    legend = f"{{{{instance}}}} {what}" if what else "{{instance}}"
    return Q(f"{fn}({metric}{member()}[$__rate_interval])", legend)


# Severity -> the colour of its threshold line (and of the value beyond it).
_TIER_COLOURS = {"info": "yellow", "warning": "orange", "critical": "red"}


def threshold_line(path: str, color: str = "red") -> list[Line]:
    """The line of an alert with one threshold, its value read from the mixin config by its
    dotted `_config` path (e.g. `walFsyncSlow.averageSeconds`)."""
    return [Line(threshold(path), color)]


def tier_lines(path: str, *tiers: str) -> list[Line]:
    """One line per severity tier of an alert, its value read from the mixin config.

    `path` is the dotted `_config` path with `{}` where the tier's name stands, spelt as the
    mixin spells it: `tier_lines("highFsyncDurations.{}Seconds")` draws the warning (orange)
    and critical (red) lines of etcdHighFsyncDurations.
    """
    return [
        Line(threshold(path.format(t)), _TIER_COLOURS[t.lower()])
        for t in tiers or ("warning", "critical")
    ]


def _targets(queries: Sequence[Q], *, fmt: str = "time_series", instant: bool = False) -> list[Any]:
    if not queries:
        raise ValueError("a panel needs at least one query")
    return [
        Target(
            expr=q.expr,
            legendFormat=q.legend,
            refId=_REF_IDS[i],
            datasource=DATASOURCE,
            format=fmt,
            instant=instant,
            intervalFactor=1,
        )
        for i, q in enumerate(queries)
    ]


def _steps(lines: Sequence[Line], base: str = "green") -> list[dict[str, Any]]:
    """Grafana 9 threshold steps: a base colour, then one step per line, ascending."""
    ordered = sorted(lines, key=lambda line: line.value)
    return [{"color": base, "value": None}] + [
        {"color": line.color, "value": line.value} for line in ordered
    ]


def _check(title: str, description: str, unit: str) -> None:
    if not title.endswith("?"):
        raise ValueError(f"panel title must be an operator's question: {title!r}")
    if not description.strip():
        raise ValueError(f"panel {title!r} needs a description")
    if not unit:
        raise ValueError(f"panel {title!r} needs a unit")


def _common(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    fmt: str = "time_series",
    instant: bool = False,
) -> dict[str, Any]:
    """The house rules checked, and the arguments every panel type shares."""
    _check(title, description, unit)
    return {
        "title": title,
        "maxDataPoints": None,
        "description": description,
        "dataSource": DATASOURCE,
        "targets": _targets(queries, fmt=fmt, instant=instant),
    }


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    lines: Sequence[Line] = (),
    stack: bool = False,
    min_zero: bool = True,
    draw: str = "line",
) -> Any:
    """A time series panel; `lines` are drawn dashed at their values."""
    return TimeSeries(
        **_common(title, description, unit, queries),
        unit=unit,
        thresholds=_steps(lines, base="transparent" if lines else "green"),
        thresholdsStyleMode="dashed" if lines else "off",
        valueMin=0 if min_zero else None,
        fillOpacity=10,
        lineWidth=1,
        drawStyle=draw,
        lineInterpolation="stepAfter" if draw == "line" and stack else "linear",
        stacking={"mode": "normal", "group": "A"} if stack else {},
        legendDisplayMode="table",
        legendPlacement="bottom",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        tooltipSort="desc",
    )


def stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    lines: Sequence[Line] = (),
    base: str = "green",
    mappings: Sequence[dict[str, Any]] = (),
    reduce: str = "lastNotNull",
) -> Any:
    """A single-value panel coloured by threshold steps (`lines`) over a `base` colour."""
    return Stat(
        **_common(title, description, unit, queries),
        format=unit,
        thresholds=_steps(lines, base=base),
        mappings=list(mappings),
        reduceCalc=reduce,
        graphMode="area",
        colorMode="value",
        textMode="value_and_name",
        noValue="no data",
        extraJson={"fieldConfig": {"defaults": {"color": {"mode": "thresholds"}}}},
    )


def table(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    hide: Sequence[str] = (),
    rename: dict[str, str] | None = None,
    mappings: Sequence[dict[str, Any]] = (),
) -> Any:
    """A table of instant queries, one row per series, joined on their common labels."""
    excluded = dict.fromkeys(("Time", "__name__", *hide), True)
    return Table(
        **_common(title, description, unit, queries, fmt="table", instant=True),
        unit=unit,
        thresholds=_steps([]),
        mappings=list(mappings),
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": excluded,
                    "indexByName": {},
                    "renameByName": dict(rename or {}),
                },
            },
        ],
        extraJson={"fieldConfig": {"defaults": {"mappings": list(mappings)}}},
    )


def heatmap(title: str, description: str, unit: str, query: Q) -> Any:
    """A heatmap of a Prometheus histogram's buckets (`sum by (le) (rate(..._bucket))`).

    Written for Grafana 9.1+'s heatmap (`options.calculate: false`: the buckets are
    already computed); the legacy fields grafanalib emits keep 9.0 able to draw it.
    """
    _check(title, description, unit)
    return Heatmap(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets([query], fmt="heatmap"),
        thresholds=_steps([]),
        dataFormat="tsbuckets",
        hideZeroBuckets=True,
        yBucketBound="upper",
        yAxis=YAxis(format=unit),
        extraJson={
            "fieldConfig": {"defaults": {"unit": unit}},
            "options": {
                "calculate": False,
                "cellGap": 1,
                "color": {
                    "exponent": 0.5,
                    "fill": "dark-orange",
                    "mode": "scheme",
                    "reverse": False,
                    "scale": "exponential",
                    "scheme": "Oranges",
                    "steps": 64,
                },
                "filterValues": {"le": 1e-9},
                "legend": {"show": True},
                "rowsFrame": {"layout": "le"},
                "tooltip": {"show": True, "yHistogram": True},
                "yAxis": {"axisPlacement": "left", "unit": unit},
            },
        },
    )


def yes_no(no: str = "no", yes: str = "yes", bad: int | None = 0) -> dict[str, Any]:
    """Value mapping 0/1 -> words; the `bad` value red and the other green (None: no colours)."""
    options: dict[str, dict[str, Any]] = {
        "0": {"text": no, "index": 0},
        "1": {"text": yes, "index": 1},
    }
    if bad is not None:
        options[str(bad)]["color"] = "red"
        options[str(1 - bad)]["color"] = "green"
    return {"type": "value", "options": options}


def state_timeline(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    mapping: dict[str, Any] | None = None,
) -> Any:
    """A state timeline of 0/1 series; by default off (green) and on (red), so onsets stand out."""
    return StateTimeline(
        **_common(title, description, unit, queries),
        mappings=[mapping or yes_no(no="off", yes="on", bad=1)],
        mergeValues=True,
        showValue="never",
        rowHeight=0.8,
        extraJson={
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "thresholds": {"mode": "absolute", "steps": _steps([Line(1, "red")])},
                }
            }
        },
    )


# ----------------------------------------------------------------------------- domain panels
def latency_panel(
    title: str,
    description: str,
    histogram: str,
    selector: str,
    *,
    by: str = "instance",
    quantiles: Sequence[float] = (0.99,),
    mean: bool = False,
    lines: Sequence[Line] = (),
    legend: str = "{{instance}}",
) -> Any:
    """Quantiles (and optionally the mean) of a seconds histogram, per `by` labels."""
    queries: list[Q] = []
    if mean:
        queries.append(
            Q(
                f"sum by ({by}) (rate({histogram}_sum{selector}[$__rate_interval]))\n/\n"
                f"sum by ({by}) (rate({histogram}_count{selector}[$__rate_interval]))",
                f"{legend} mean",
            )
        )
    queries.extend(
        Q(
            f"histogram_quantile({q:g}, sum by ({by}, le) "
            f"(rate({histogram}_bucket{selector}[$__rate_interval])))",
            f"{legend} p{q * 100:g}",
        )
        for q in quantiles
    )
    return timeseries(title, description, "s", queries, lines=lines)


def wal_fsync_panel(title: str, description: str, quantiles: Sequence[float]) -> Any:
    """WAL fsync mean and `quantiles` per member, with the course's 25 ms line: the
    etcdWALFsyncSlow threshold, which fires on the 5-minute mean."""
    return latency_panel(
        title,
        description,
        "etcd_disk_wal_fsync_duration_seconds",
        member(),
        quantiles=quantiles,
        mean=True,
        lines=threshold_line("walFsyncSlow.averageSeconds"),
    )


# The fault gauges a raftmon member exposes, each turned into a 0/1 flag per member/peer.
_FAULTS: dict[str, tuple[str, str, str]] = {
    # kind: (metric, legend, annotation title)
    "fsync": (
        "raftmon_fault_wal_fsync_delay_seconds",
        "{{instance}} WAL fsync delay",
        "WAL fsync delay injected",
    ),
    "ticks": (
        "raftmon_fault_raft_ticks_paused",
        "{{instance}} Raft ticks paused",
        "Raft ticks paused",
    ),
    "peer_delay": (
        "raftmon_fault_peer_delay_seconds",
        "{{instance}} -> {{To}} peer delay",
        "Peer delay injected",
    ),
    "peer_drop": (
        "raftmon_fault_peer_drop",
        "{{instance}} -> {{To}} peer drop",
        "Peer messages dropped",
    ),
}
FAULT_KINDS = tuple(_FAULTS)


def fault_state_panel(kinds: Sequence[str] = FAULT_KINDS) -> Any:
    """ "Which faults are injected?": one on/off row per member (and peer) and fault kind."""
    queries = [Q(f"{_FAULTS[k][0]}{member()} > bool 0", _FAULTS[k][1]) for k in kinds]
    return state_timeline(
        "Which faults are injected, and since when?",
        "raftmon's fault-injection gauges (raftmon_fault_*) as on/off per member: a red bar "
        "starts when the fault was injected, so the effect on the panels below can be read "
        "against its cause. Empty on etcd, which has no fault injection.",
        "none",
        queries,
    )


def board_annotations(kinds: Sequence[str] = FAULT_KINDS) -> Any:
    """Grafana's built-in annotations, leader changes, and one annotation per fault kind."""
    items: list[dict[str, Any]] = [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        },
        {
            "datasource": DATASOURCE,
            "enable": True,
            "expr": f"changes(etcd_server_is_leader{member()}[$__rate_interval]) > 0",
            "iconColor": "orange",
            "name": "Leader changes",
            "step": "10s",
            "tagKeys": mixin().instance_label,
            "textFormat": "leadership moved on {{instance}}",
            "titleFormat": "Leader change",
        },
    ]
    for kind in kinds:
        metric, _legend, title = _FAULTS[kind]
        items.append(
            {
                "datasource": DATASOURCE,
                "enable": True,
                "expr": f"{metric}{member()} > 0",
                "iconColor": "red",
                "name": f"Fault: {title}",
                "step": "10s",
                "tagKeys": "instance,To" if "{{To}}" in _legend else "instance",
                "textFormat": _legend,
                "titleFormat": title,
            }
        )
    return Annotations(list=items)


# ----------------------------------------------------------------------------- variables
@dataclass(frozen=True, slots=True)
class _Variable:
    """A grafanalib Template with the `current` selection and `definition` Grafana 9 reads."""

    template: Any
    current: dict[str, Any] | None = None

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.template.to_json_data()
        if self.current is not None:
            data["current"] = self.current
        if data["type"] == "query":
            data["definition"] = data["query"]
        return data


def templating() -> Any:
    """datasource, cluster and instance: the variables every query uses."""
    m = mixin()
    datasource = _Variable(
        Template(name="datasource", label="Data source", query="prometheus", type="datasource"),
        current={"selected": False, "text": "default", "value": "default"},
    )
    cluster_var = _Variable(
        Template(
            name="cluster",
            label=m.cluster_label,
            query=f"label_values(etcd_server_has_leader{{{m.etcd_selector}}}, {m.cluster_label})",
            dataSource=DATASOURCE,
            refresh=2,  # on time range change: clusters come and go
            sort=1,
        )
    )
    instance_var = _Variable(
        Template(
            name="instance",
            label="member",
            query=f"label_values(etcd_server_has_leader{cluster()}, {m.instance_label})",
            dataSource=DATASOURCE,
            refresh=2,
            sort=1,
            multi=True,
            includeAll=True,
            allValue=".*",
        ),
        current={"selected": True, "text": ["All"], "value": ["$__all"]},
    )
    return Templating(list=[datasource, cluster_var, instance_var])


# ----------------------------------------------------------------------------- layout
def layout(*rows: tuple[int, Sequence[Any]]) -> list[Any]:
    """Place panels on Grafana's 24-column grid: each `(height, panels)` is one row.

    Panels in a row share the width equally (the last one takes the remainder), so a
    board file reads top to bottom as the screen does.
    """
    placed: list[Any] = []
    y = 0
    for height, panels in rows:
        if not panels:
            continue
        width = 24 // len(panels)
        for i, panel in enumerate(panels):
            w = 24 - width * i if i == len(panels) - 1 else width
            placed.append(attr.evolve(panel, gridPos=GridPos(h=height, w=w, x=width * i, y=y)))
        y += height
    return placed


class _FaultState:
    """The place of the board's fault state panel in its rows (see `board`)."""

    def __repr__(self) -> str:
        return "FAULTS"


# Stands in a board's rows for `fault_state_panel(faults)`, so a board names its kinds once.
FAULTS = _FaultState()


def _title_and_question(name: str, doc: str | None) -> tuple[str, str]:
    """`"Disk: is fsync fast enough?"` -> ("raftmon / Disk", "Is fsync fast enough?")."""
    label, sep, question = (doc or "").strip().partition("\n")[0].partition(": ")
    if not sep or not question:
        raise ValueError(f"dashboards/{name}.dashboard.py: docstring must open 'Title: question'")
    return f"raftmon / {label}", question[0].upper() + question[1:]


def board(
    name: str,
    doc: str | None,
    rows: Sequence[tuple[int, Sequence[Any]]],
    *,
    faults: Sequence[str] = FAULT_KINDS,
) -> Any:
    """A raftmon dashboard: variables, annotations, links to its sibling boards, ids set.

    `name` is the board file's stem (`dashboards/<name>.dashboard.py`): it gives the uid
    `raftmon-<name>`, and the description names the file to edit after the board's question.
    `doc` is the board file's docstring, whose first line "Title: question" is the one
    place the board's title and question are written. `rows` go to `layout`, with
    `FAULTS` replaced by the fault state panel of `faults` (the kinds the annotations show).
    """
    title, question = _title_and_question(name, doc)
    panels = layout(
        *(
            (height, [fault_state_panel(faults) if p is FAULTS else p for p in row])
            for height, row in rows
        )
    )
    return Dashboard(
        title=title,
        uid=f"raftmon-{name}",
        description=f"{question} Generated by `raftmon dashboards` from "
        f"dashboards/{name}.dashboard.py.",
        tags=["raftmon", "etcd"],
        templating=templating(),
        annotations=board_annotations(faults),
        panels=panels,
        links=[
            DashboardLink(
                title="raftmon boards",
                type="dashboards",
                tags=["raftmon"],
                asDropdown=True,
                keepTime=True,
                includeVars=True,
            )
        ],
        time=Time("now-1h", "now"),
        refresh="10s",
        timezone="browser",
        graphTooltip=1,  # shared crosshair: the same instant on every panel
        schemaVersion=SCHEMA_VERSION,
        editable=True,
    ).auto_panel_ids()
