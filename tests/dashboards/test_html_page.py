"""dashboards.html without a browser: Grafana's rules, the frames, the self-contained page.

What Grafana computes before a query leaves (intervals, `$__rate_interval`, variables,
legends), what its datasource and transformations make of the answers (heatmap buckets,
merged tables), and the page's promises (no external reference, no way for a label to end
its script). Chromium draws pages from real lab runs in tests/lab/test_html_dashboards.py.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dashboards.html import frames, page
from dashboards.html.fetch import panel_data, parse_duration
from dashboards.html.grafana import RunRange, UnknownVariable, Variables, legend, round_interval
from lab import demo
from tests.dashboards.html_dom import page_data


@pytest.mark.parametrize(
    ("raw", "rounded"), [(0.2, 0.2), (0.9, 1.0), (4.0, 5.0), (13.0, 15.0), (40.0, 30.0)]
)
def test_intervals_round_to_grafanas_steps(raw: float, rounded: float) -> None:
    assert round_interval(raw) == rounded


def test_interval_never_goes_below_the_scrape_interval() -> None:
    short = RunRange(0, 120, scrape_interval=1.0)
    assert short.interval(800) == 1.0  # 0.15 s a pixel would be finer than the data
    assert RunRange(0, 3600, scrape_interval=1.0).interval(100) == 30.0


def test_rate_interval_spans_four_scrapes_at_least() -> None:
    rng = RunRange(0, 120, scrape_interval=1.0)
    assert rng.rate_interval(1.0) == 4.0
    assert rng.rate_interval(30.0) == 31.0


def test_variables_are_filled_as_grafana_would_for_the_run() -> None:
    var = Variables(cluster="demo")
    expr = 'rate(x{cluster=~"$cluster", instance=~"${instance}"}[$__rate_interval])'
    assert var.fill(expr, 1.0, 4.0) == 'rate(x{cluster=~"demo", instance=~".*"}[4s])'
    assert var.fill("x[$__interval]", 0.5, 4.0) == "x[500ms]"
    with pytest.raises(UnknownVariable):
        var.fill("x{a=~'$nope'}", 1.0, 4.0)


def test_legends_follow_legend_format_or_name_the_series() -> None:
    labels = {"__name__": "up", "instance": "m1", "job": "etcd"}
    assert legend("{{instance}} up", labels) == "m1 up"
    assert legend("{{ missing }}x", labels) == "x"
    assert legend("", labels) == 'up{instance="m1", job="etcd"}'


def test_durations_parse_as_prometheus_writes_them() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="duration"):
        parse_duration("1 s")


def test_heatmap_buckets_are_de_accumulated_in_bound_order() -> None:
    times = [10.0, 11.0]
    result = [
        {"metric": {"le": "+Inf"}, "values": [[10, "3"], [11, "5"]]},
        {"metric": {"le": "0.001"}, "values": [[10, "1"], [11, "2"]]},
        {"metric": {"le": "0.002"}, "values": [[10, "3"], [11, "2"]]},
    ]
    buckets = frames.heatmap(result, times)["buckets"]
    assert [b["le"] for b in buckets] == ["0.001", "0.002", "+Inf"]
    assert [b["values"] for b in buckets] == [[1.0, 2.0], [2.0, 0.0], [0.0, 3.0]]


def test_series_land_on_the_panel_grid_with_gaps_as_none() -> None:
    times = frames.time_grid(100.4, 103.0, 1.0)
    assert times == [100.0, 101.0, 102.0, 103.0]
    rows = frames.series([{"metric": {"i": "a"}, "values": [[101, "2"]]}], times, "{{i}}", "A")
    assert rows == [
        {"name": "a", "labels": {"i": "a"}, "ref": "A", "values": [None, 2.0, None, None]}
    ]


def test_table_merge_joins_rows_of_several_metrics_by_member() -> None:
    def instant(name: str, instance: str, value: str, **extra: str) -> dict[str, Any]:
        metric = {"__name__": name, "instance": instance, "job": "etcd", **extra}
        return {"metric": metric, "value": [50, value]}

    results = {
        "A": [instant("is_leader", "m1", "1"), instant("is_leader", "m2", "0")],
        "B": [instant("version", "m2", "1", server_version="3.4.23")],
    }
    organize = {
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True, "__name__": True, "job": True, "Value #B": True},
            "renameByName": {"Value #A": "leader", "instance": "member"},
        },
    }
    table = frames.table(results, [{"id": "merge", "options": {}}, organize])
    assert table["columns"] == ["member", "leader", "server_version"]
    assert table["rows"] == [["m1", 1.0, None], ["m2", 0.0, "3.4.23"]]


class _Canned:
    """A Source that answers every query with `result` and remembers what it was asked."""

    def __init__(self, result: list[dict[str, Any]]) -> None:
        self.result = result
        self.asked: list[tuple[str, dict[str, str]]] = []

    def api(self, path: str, **params: str) -> Any:
        self.asked.append((path, params))
        return {"resultType": "matrix", "result": self.result}


def _panel(board_uid: str, kind: str) -> dict[str, Any]:
    board = next(b for b in page.boards() if b["uid"] == board_uid)
    return next(p for p in board["panels"] if p["type"] == kind)


def test_a_committed_heatmap_panel_asks_what_grafana_would() -> None:
    source = _Canned([{"metric": {"le": "0.001"}, "values": [[1000, "4"]]}])
    rng = RunRange(1000, 1120, scrape_interval=1.0)
    data = panel_data(source, _panel("raftmon-disk", "heatmap"), rng, Variables("run-a"))
    (path, params), *_ = source.asked
    # maxDataPoints 100 over 120 s: 1.2 s -> Grafana's 1 s step; rate over 4 scrapes.
    assert path == "query_range"
    assert params["step"] == "1.0"
    assert 'cluster=~"run-a"' in params["query"]
    assert "[4s]" in params["query"]
    assert data["errors"] == []
    assert data["heatmap"]["buckets"][0]["values"][0] == 4.0


def test_a_rejected_query_becomes_the_panels_error() -> None:
    class Refusing:
        def api(self, path: str, **params: str) -> Any:
            raise ValueError("query_range: parse error")

    rng = RunRange(0, 60, scrape_interval=1.0)
    data = panel_data(Refusing(), _panel("raftmon-overview", "timeseries"), rng, Variables("c"))
    assert data["errors"]
    assert "parse error" in data["errors"][0]
    assert data["series"] == []


def _rendered(title_label: str = "m1") -> str:
    data: dict[str, Any] = {  # the JSON the page embeds
        "cluster": "c",
        "range": {"from": 0.0, "to": 60.0, "scrapeInterval": 1.0},
        "events": [{"t": 30.0, "kind": "fault", "text": "slow disk </script><b>"}],
        "boards": [
            {
                "uid": "raftmon-x",
                "title": "X",
                "variables": {"cluster": "c"},
                "panels": [],
                "annotations": [],
            }
        ],
    }
    data["boards"][0]["variables"]["instance"] = title_label
    return page.render(data, "raftmon dashboards: c", {"load report": "load/report.html"})


def test_the_page_is_self_contained_and_labels_cannot_end_its_script() -> None:
    if page.uplot_dir() is None:
        _missing_uplot()
    text = _rendered("</script><script>alert(1)</script>")
    # Nothing is loaded from elsewhere (uPlot's licence comment names its home: no load).
    for reference in ("src=", "<link", "url(http", 'href="http', "@import", "fetch("):
        assert reference not in text, reference
    assert text.count("</script>") == 3  # the data, uPlot, render.js: nothing else closes one
    data = page_data(text)
    assert data["boards"][0]["variables"]["instance"].startswith("</script>")
    assert "slow disk &lt;/script&gt;" in text  # the events table, escaped


def test_without_uplot_the_page_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "uplot_dir", lambda: None)
    text = _rendered()
    assert "uPlot is not installed" in text
    assert "make venv" in text


def _missing_uplot() -> None:
    message = "uPlot not installed (node_modules/uplot): run `make venv` (npm ci)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def test_uplot_is_installed_from_the_lockfile() -> None:
    folder = page.uplot_dir()
    if folder is None:
        _missing_uplot()
        return
    assert (folder / "uPlot.iife.min.js").stat().st_size > 20_000


def test_the_demo_links_its_load_report_to_the_page_once(tmp_path: Path) -> None:
    report = tmp_path / "load" / "report.html"
    report.parent.mkdir()
    report.write_text("<html><head></head><body><h1>load</h1></body></html>")
    for _ in range(2):
        demo.link_page(report, "../dashboards.html", "Dashboards of this run")
    text = report.read_text()
    assert text.count('<a href="../dashboards.html">Dashboards of this run</a>') == 1
    assert text.index("Dashboards of this run") < text.index("<h1>load</h1>")


def test_the_demo_report_prints_the_pages_path_or_why_there_is_none() -> None:
    def printed(path: str | None) -> str:
        out = Console(file=io.StringIO(), width=200)
        report = json.loads((Path(__file__).parent / "demo_report.json").read_text())
        report["dashboards_html"] = path
        demo.render(report, out)
        assert isinstance(out.file, io.StringIO)
        return out.file.getvalue()

    assert "Dashboards   /tmp/x/dashboards.html" in printed("/tmp/x/dashboards.html")
    assert "Dashboards   not drawn" in printed(None)
