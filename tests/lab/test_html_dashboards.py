"""Every lab run's dashboards.html, and headless Chromium drawing the slow-disk run's.

The pages come from the session's real lab runs (conftest.lab_results: real clusters, the
shared Prometheus), so this costs no cluster of its own. Chromium (Debian's `chromium`)
opens the slow-disk page with no network, runs its script, and the DOM it dumps must show
every panel of every board handled (a canvas for each chart, a table or "No data" for
each table) with no script error; a screenshot is taken too. The fault-only items of
that run (the fsync-delay annotation, the fault timeline, the slow band of the fsync
heatmap) must hold data on the page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from dashboards.html import chromium, page
from lab.report import DASHBOARDS_HTML
from lab.runtime import RunResult
from tests.dashboards.html_dom import Dom, Panel, page_data
from tests.helpers import require_tool
from tests.lab.conftest import explain

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(900)]

RUN = "slow-disk"
CHARTS = ("timeseries", "state-timeline", "heatmap")
FSYNC_DELAY = "Fault: WAL fsync delay injected"
FAULTS_PANEL = "Which faults are injected, and since when?"


def _page(result: RunResult) -> Path:
    path = result.measurements.get(DASHBOARDS_HTML)
    assert path, f"run {result.run} wrote no dashboards.html\n{explain(result)}"
    return Path(path)


def test_every_lab_run_writes_a_self_contained_dashboards_page(
    lab_results: dict[str, RunResult],
) -> None:
    for run, result in lab_results.items():
        text = _page(result).read_text(encoding="utf-8")
        for reference in ("src=", "<link", "url(http", 'href="http'):
            assert reference not in text, f"{run}: {reference}"
        data = page_data(text)
        assert data["cluster"] == run
        assert [b["uid"] for b in data["boards"]][: len(page.ORDER)] == list(page.ORDER)
        assert data["range"]["to"] > data["range"]["from"]


@pytest.fixture(scope="module")
def drawn(lab_results: dict[str, RunResult], tmp_path_factory: pytest.TempPathFactory) -> Dom:
    require_tool(chromium.CHROMIUM)
    path = _page(lab_results[RUN])
    # The picture: the disk board, where this run's fault shows (one board rasterises in a
    # fraction of the whole page's time on a busy machine).
    shot = tmp_path_factory.mktemp("html") / "slow-disk-disk.png"
    chromium.screenshot(path, shot, only="raftmon-disk", height=1500)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = chromium.dump_dom(path)
    errors = [line for line in result.console if "Uncaught" in line or "Error" in line]
    assert not errors, "\n".join(errors)
    return Dom(result.stdout)


def _expected_panels() -> int:
    return sum(len(b["panels"]) for b in page.boards())


def test_chromium_draws_every_panel_without_script_errors(drawn: Dom) -> None:
    assert drawn.body.get("data-render") == "done", "render.js did not finish"
    assert drawn.body.get("data-errors") == "0", drawn.errors
    assert not drawn.errors.strip()
    assert len(drawn.panels) == _expected_panels() == int(drawn.body["data-panels"])
    problems = []
    for p in drawn.panels:
        state, kind = p.attrs.get("data-state"), p.attrs.get("data-type")
        if state not in ("drawn", "nodata") or "data-error" in p.attrs:
            problems.append(f"{p.key}: {state} {p.attrs.get('data-error', '')}")
        elif kind in CHARTS and not p.tags.get("canvas"):
            problems.append(f"{p.key}: a {kind} without a canvas")
        elif kind == "stat" and state == "drawn" and not p.tags.get("canvas"):
            problems.append(f"{p.key}: a stat without its sparkline")
        elif kind == "table" and state == "drawn" and not p.tags.get("table"):
            problems.append(f"{p.key}: a table panel without a table")
    assert not problems, "\n".join(problems)


def _panel(drawn: Dom, board: str, title: str) -> Panel:
    return next(p for p in drawn.panels if p.key == (board, title))


def test_most_panels_have_data_on_the_slow_disk_run(drawn: Dom) -> None:
    empty = sorted(p.key for p in drawn.panels if p.attrs.get("data-state") == "nodata")
    with_data = len(drawn.panels) - len(empty)
    assert with_data >= 35, f"only {with_data} panels with data; empty: {empty}"
    for key in (
        ("raftmon-overview", "How many members are up?"),
        ("raftmon-overview", "Which member leads, and is every member following it?"),
        ("raftmon-disk", "Is WAL fsync under 25 ms?"),
    ):
        assert _panel(drawn, *key).attrs["data-state"] == "drawn", key


def _data(lab_results: dict[str, RunResult]) -> dict[str, Any]:
    return page_data(_page(lab_results[RUN]).read_text(encoding="utf-8"))


def _frame(data: dict[str, Any], board: str, title: str) -> dict[str, Any]:
    b = next(b for b in data["boards"] if b["uid"] == board)
    return next(p for p in b["panels"] if p["title"] == title)


def test_slow_disk_page_shows_the_fault_on_its_fault_only_items(
    lab_results: dict[str, RunResult], drawn: Dom
) -> None:
    data = _data(lab_results)
    disk = next(b for b in data["boards"] if b["uid"] == "raftmon-disk")
    note = next(a for a in disk["annotations"] if a["name"] == FSYNC_DELAY)
    assert len(note["regions"]) >= 3, note  # one per member: the fault was on all three
    faults = _frame(data, "raftmon-disk", FAULTS_PANEL)
    on = {s["name"] for s in faults["series"] if 1 in s["values"]}
    assert {"m1 WAL fsync delay", "m2 WAL fsync delay", "m3 WAL fsync delay"} <= on, on
    # The heatmap's slow band: fsyncs of 32 ms and more while the 30 ms delay lasted.
    heat = _frame(data, "raftmon-disk", "How are WAL fsync latencies distributed?")
    slow = [
        b
        for b in heat["heatmap"]["buckets"]
        if float(b["le"]) >= 0.032 and any((v or 0) > 0 for v in b["values"])
    ]
    assert slow, heat["heatmap"]
    mean = _frame(data, "raftmon-disk", "Is WAL fsync under 25 ms?")
    peak = max((v for s in mean["series"] for v in s["values"] if v is not None), default=0)
    assert math.isfinite(peak)
    assert peak > 0.025
    kinds = {e["kind"] for e in data["events"]}
    assert {"fault", "firing"} <= kinds, data["events"]
    # And the browser drew them.
    for title in (FAULTS_PANEL, "How are WAL fsync latencies distributed?"):
        assert _panel(drawn, "raftmon-disk", title).attrs["data-state"] == "drawn", title
