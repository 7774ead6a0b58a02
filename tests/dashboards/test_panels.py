"""House rules for every panel and query, checked on the committed JSON."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from alerts.config import thresholds
from dashboards.queries import LOADGEN_JOB_SELECTOR, mixin
from tests.dashboards.boards import (
    INSTANCE_EXEMPT_PREFIXES,
    ROOT,
    Query,
    all_queries,
    bare_metrics,
    iter_panels,
    known_series,
    load_boards,
    panel_queries,
    selectors,
)

BOARDS = load_boards()
QUERIES = all_queries(BOARDS)
THRESHOLDS = thresholds()
PANELS = [(name, panel) for name, board in BOARDS.items() for panel in iter_panels(board)]


def _panel_id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}/{item[1]['title']}"


@pytest.mark.parametrize("item", PANELS, ids=_panel_id)
def test_every_panel_has_a_question_a_description_and_a_unit(
    item: tuple[str, dict[str, Any]],
) -> None:
    _, panel = item
    assert panel["title"].endswith("?")
    assert len(panel["description"]) > 40
    assert panel["fieldConfig"]["defaults"]["unit"], "fieldConfig.defaults.unit is empty"


def test_panel_titles_are_unique_within_a_board() -> None:
    for name, board in BOARDS.items():
        titles = [p["title"] for p in iter_panels(board)]
        assert len(titles) == len(set(titles)), name


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_selector_uses_the_cluster_and_instance_variables(query: Query) -> None:
    m = mixin()
    assert not bare_metrics(query.expr), f"metric without a selector in {query.expr!r}"
    found = selectors(query.expr)
    assert found, f"no metric selector in {query.expr!r}"
    for metric, matchers in found:
        if query.ref == "variable":
            # `cluster` lists the clusters; `instance` lists the members of the chosen one.
            assert m.etcd_selector in matchers, query.expr
            if query.panel == "instance":
                assert f'{m.cluster_label}=~"$cluster"' in matchers, query.expr
            continue
        assert f'{m.cluster_label}=~"$cluster"' in matchers, f"{metric} lacks $cluster"
        if not metric.startswith(INSTANCE_EXEMPT_PREFIXES):
            assert f'{m.instance_label}=~"$instance"' in matchers, f"{metric} lacks $instance"
        if metric.startswith("raftmon_loadgen_"):
            assert LOADGEN_JOB_SELECTOR in matchers, metric
        elif metric != "ALERTS":
            assert m.etcd_selector in matchers, f"{metric} lacks the mixin's etcd selector"


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_range_is_the_grafana_rate_interval(query: Query) -> None:
    ranges = re.findall(r"\[([^\]]*)\]", query.expr)
    assert all(r == "$__rate_interval" for r in ranges), ranges
    for func in ("rate", "increase", "changes"):
        for match in re.finditer(rf"\b{func}\(", query.expr):
            tail = query.expr[match.end() :]
            assert re.match(r"[^()]*\[\$__rate_interval\]\)", tail), query.expr


def test_every_metric_is_in_the_exporter_catalog_loadgen_or_a_recording_rule() -> None:
    known = known_series()
    unknown = {
        (str(q), metric) for q in QUERIES for metric, _ in selectors(q.expr) if metric not in known
    }
    assert not unknown


def _line_values(panel: dict[str, Any]) -> set[float]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return {s["value"] for s in steps if s["value"] is not None}


def _panel(board: str, title: str) -> dict[str, Any]:
    (panel,) = [p for p in iter_panels(BOARDS[board]) if p["title"] == title]
    return panel


@pytest.mark.parametrize(
    ("board", "title", "paths"),
    [
        ("disk", "Is WAL fsync under 25 ms?", ["walFsyncSlow.averageSeconds"]),
        ("loadtest", "Is WAL fsync under 25 ms during the test?", ["walFsyncSlow.averageSeconds"]),
        (
            "overview",
            "Are leader changes under one per minute?",
            ["leaderChangesTooFrequent.perMinute"],
        ),
        (
            "disk",
            "Is p99 WAL fsync below the alert tiers?",
            ["highFsyncDurations.warningSeconds", "highFsyncDurations.criticalSeconds"],
        ),
        (
            "disk",
            "Is backend commit p99 below the alert tiers?",
            ["highCommitDurations.warningSeconds", "highCommitDurations.criticalSeconds"],
        ),
        ("network", "Is peer round-trip p99 under 102 ms?", ["memberCommunicationSlow.p99Seconds"]),
        (
            "overview",
            "How full is the database against its quota?",
            [
                "databaseQuotaLowSpace.infoRatio",
                "databaseQuotaLowSpace.warningRatio",
                "databaseQuotaLowSpace.criticalRatio",
            ],
        ),
        ("overview", "Is apply keeping up with commit?", ["commitApplyLag.minEntries"]),
    ],
)
def test_threshold_lines_equal_the_mixin_thresholds(
    board: str, title: str, paths: list[str]
) -> None:
    assert _line_values(_panel(board, title)) == {THRESHOLDS[p] for p in paths}


def test_the_fsync_line_is_the_courses_25_ms() -> None:
    assert _line_values(_panel("disk", "Is WAL fsync under 25 ms?")) == {0.025}


def test_timeseries_with_threshold_lines_draw_them() -> None:
    for _, panel in PANELS:
        if panel["type"] == "timeseries" and _line_values(panel):
            custom = panel["fieldConfig"]["defaults"]["custom"]
            assert custom["thresholdsStyle"]["mode"] == "dashed", panel["title"]


def test_board_files_hold_no_threshold_literals() -> None:
    """One source of truth: the only float literals in board files are quantiles."""
    for path in sorted((ROOT / "dashboards").glob("*.dashboard.py")):
        floats = {
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, float)
        }
        assert floats <= {0.5, 0.99}, f"{path.name}: {floats}"


def test_the_proposal_panels_plot_proposals_not_leader_changes() -> None:
    """etcd's own board plots leader changes under "Raft proposals"; ours must not."""
    for board in BOARDS.values():
        for panel in iter_panels(board):
            if "proposal" in panel["title"].lower():
                exprs = [q.expr for q in panel_queries({**board, "panels": [panel]})]
                assert all("leader_changes" not in e for e in exprs), panel["title"]
                assert all("proposals" in e for e in exprs), panel["title"]
