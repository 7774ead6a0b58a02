"""Report files are produced and parse; the text summary reads like etcd's benchmark."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from loadgen import recorder
from loadgen.config import LoadConfig
from loadgen.recorder import PERCENTILES, Recorder, WorkerResult
from loadgen.report import CSV_COLUMNS, merge_results, render_csv, render_text
from tests.loadgen.conftest import run_load
from tests.loadgen.fake_etcd import FakeEtcd


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_report_files_are_written_and_parse(fake: FakeEtcd, tmp_path: Path) -> None:
    csv_path, html_path = tmp_path / "s.csv", tmp_path / "r.html"
    code, report = run_load(
        [
            f"--endpoints={fake.url}",
            "--clients=4",
            "--rate=300",
            "--duration=2s",
            f"--csv={csv_path}",
            f"--html={html_path}",
            "put",
        ],
        report_dir=tmp_path / "dir",
    )
    assert code == 0
    rows = read_csv(csv_path)
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sum(int(r["throughput"]) for r in rows) == report["succeeded"] == 600
    assert sum(int(r["sent"]) for r in rows) == report["sent"] == 600
    assert [r["sent"] for r in report["timeseries"]] == [int(r["sent"]) for r in rows]
    assert all(float(r["p99_seconds"]) >= float(r["p50_seconds"]) for r in rows)

    parsed = json.loads((tmp_path / "dir" / "report.json").read_text())
    assert parsed["succeeded"] == 600
    assert set(parsed["latency_seconds"]["percentiles"]) == {f"{p:g}" for p in PERCENTILES}
    assert read_csv(tmp_path / "dir" / "timeseries.csv") == rows

    for page in (html_path, tmp_path / "dir" / "report.html"):
        parser = TagCollector()
        parser.feed(page.read_text())
        parser.close()
        assert parser.tags.count("svg") == 3  # throughput, latency, errors
        assert "polyline" in parser.tags
        assert "script" not in parser.tags  # self-contained: nothing to fetch
        assert not any(name in ("src", "href") for name, _ in parser.attrs)
        assert any("no coordinated omission" in t for t in parser.text)

    text = (tmp_path / "dir" / "report.txt").read_text()
    assert "Method: Open loop at 300 requests/s" in text


def synthetic(latencies: list[float], errors: int = 0, index: int = 0) -> WorkerResult:
    rec = Recorder(t0=0.0)
    for i, lat in enumerate(latencies):
        rec.record("put", "success", lat, now=i * 0.01)
    for i in range(errors):
        rec.record("put", "no_leader", 0.0, now=i * 0.01)
    rec.flush()
    return WorkerResult(
        index=index,
        ops=rec.op_results(),
        series=rec.series,
        elapsed=max(rec.last_end, 1e-9),
        sent=len(latencies) + errors,
        unsent=0,
    )


def test_text_summary_has_etcd_benchmark_sections() -> None:
    cfg = LoadConfig(workload="put", endpoints=("http://x:1",), total=200)
    report = merge_results(cfg, [synthetic([0.001 * (1 + i % 10) for i in range(200)], errors=3)])
    text = render_text(report)
    for line in (
        "Summary:",
        "Total:",
        "Slowest:\t0.0100 secs.",
        "Fastest:\t0.0010 secs.",
        "Average:\t0.0055 secs.",
        "Stddev:",
        "Requests/sec:",
        "Response time histogram:",
        "Latency distribution:",
        "99.99% in",
        "no_leader:\t3",
        "∎",
    ):
        assert line in text, line
    assert "Closed loop" in text


def test_series_counts_a_request_sent_in_its_second_and_completed_in_its_own() -> None:
    rec = Recorder(t0=0.0)
    for i in range(10):  # all sent in second 0 ...
        rec.record_send(now=0.5 + i * 0.01)
    for i in range(10):  # ... and answered in second 1, as after a stall
        rec.record("put", "success", 1.0, now=1.5 + i * 0.01)
    rec.flush()
    assert [(r.second, r.sent, r.ok) for r in rec.series] == [(0, 10, 0), (1, 0, 10)]
    result = WorkerResult(
        index=0, ops=rec.op_results(), series=rec.series, elapsed=1.6, sent=10, unsent=0
    )
    cfg = LoadConfig(workload="put", endpoints=("http://x:1",), total=10)
    rows = list(csv.DictReader(io.StringIO(render_csv(merge_results(cfg, [result, result])))))
    assert [(r["second"], r["sent"], r["throughput"]) for r in rows] == [
        ("0", "20", "0"),
        ("1", "0", "20"),
    ]


def test_completions_recorded_in_batches_give_the_figures_of_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sends and completions over 3.5 s, some failed, read as the runner reads them: each
    second's row and progress figures as it closes, then the run's results."""

    def run() -> tuple[list[tuple[int, int, int, int, str]], list[tuple[int, int]], object]:
        rec = Recorder(t0=0.0)
        progress = []
        for i in range(350):
            now = i * 0.01
            rec.record_send(now)
            rec.record("put", "success" if i % 7 else "timeout", 0.001 * (1 + i % 13), now)
            if i % 100 == 99:  # the ticker
                rec.roll((i + 1) * 0.01)
                progress.append((rec.ok, rec.errors))
        rec.flush()
        rows = [(r.second, r.ok, r.errors, r.sent, r.histogram) for r in rec.series]
        ops = rec.op_results()["put"]
        return rows, progress, (ops.outcomes, ops.histogram, ops.moments, rec.last_end)

    batched = run()
    monkeypatch.setattr(recorder, "BATCH", 1)
    assert run() == batched


def test_client_cpu_of_every_worker_adds_up_and_is_shown_per_request() -> None:
    cfg = LoadConfig(workload="put", endpoints=("http://x:1",), total=200, protocol="grpc")
    results = [synthetic([0.001] * 100, index=i) for i in range(2)]
    results[0].cpu_seconds, results[1].cpu_seconds = 0.010, 0.030
    report = merge_results(cfg, results)
    assert report.cpu_seconds == 0.040
    assert report.cpu_us_per_request == 200.0  # 40 ms over 200 requests sent
    assert "Client CPU (grpc): 0.040 secs, 200 µs per request." in render_text(report)
