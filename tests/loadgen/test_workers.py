"""`--workers N`: shares add up, and merged results equal the sum of the parts."""

from __future__ import annotations

import pytest

from loadgen.config import LoadConfig
from loadgen.recorder import Recorder, WorkerResult
from loadgen.report import merge_results
from tests.loadgen.conftest import run_load
from tests.loadgen.fake_etcd import FakeEtcd


def test_two_workers_total_equals_sum_of_their_requests(fake: FakeEtcd) -> None:
    code, report = run_load(
        [
            f"--endpoints={fake.url}",
            "--workers=2",
            "--clients=4",
            "--conns=2",
            "put",
            "--total=400",
            "--sequential-keys",
            "--key-space-size=400",
        ]
    )
    assert code == 0
    assert report["config"]["workers"] == 2
    assert report["succeeded"] == report["sent"] == fake.state.puts == 400
    assert report["latency_seconds"]["count"] == 400
    assert sum(p["throughput"] for p in report["timeseries"]) == 400


def test_two_workers_keep_one_open_loop_schedule_and_count_errors(fake: FakeEtcd) -> None:
    fake.state.fail_every = 4  # every 4th put answers "no leader"
    code, report = run_load(
        [
            f"--endpoints={fake.url}",
            "--workers=2",
            "--clients=4",
            "--rate=200",
            "--duration=1s",
            "put",
        ]
    )
    assert code == 0
    assert report["sent"] == 200 == fake.state.puts
    assert report["errors"]["no_leader"] == 50
    assert report["succeeded"] == 150


def worker(index: int, latencies: list[float]) -> WorkerResult:
    rec = Recorder(t0=0.0)
    for i, lat in enumerate(latencies):
        rec.record("put", "success", lat, now=i * 0.1)
    rec.flush()
    return WorkerResult(
        index=index,
        ops=rec.op_results(),
        series=rec.series,
        elapsed=rec.last_end,
        sent=len(latencies),
        unsent=0,
    )


def test_merged_histogram_equals_one_histogram_of_all_values() -> None:
    a = [0.001 * i for i in range(1, 101)]
    b = [0.002 * i for i in range(1, 51)]
    cfg = LoadConfig(workload="put", endpoints=("http://x:1",), total=150)
    merged = merge_results(cfg, [worker(0, a), worker(1, b)])
    together = merge_results(cfg, [worker(0, a + b)])
    assert merged.overall.ok == 150
    assert merged.sent == 150
    for p in (10.0, 50.0, 90.0, 99.0, 99.99):
        assert merged.overall.percentile(p) == together.overall.percentile(p)
    assert merged.overall.moments.slowest == pytest.approx(0.1)
    assert merged.overall.moments.fastest == pytest.approx(0.001)
    assert merged.overall.moments.average == pytest.approx(together.overall.moments.average)
    assert sum(p.throughput for p in merged.series) == 150
