"""The generator's own metrics: names, labels, worker sums, and a live scrape mid-run."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from loadgen.client import parse_metrics
from loadgen.metrics import (
    INFLIGHT,
    REQUEST_DURATION,
    REQUESTS_TOTAL,
    TARGET_RATE,
    LoadMetrics,
    MergedCollector,
)
from tests.helpers import free_port
from tests.loadgen.fake_etcd import FakeEtcd
from tests.loadgen.runs import run_load_in_thread


def test_families_carry_op_and_outcome_labels() -> None:
    m = LoadMetrics()
    m.observe("put", "success", 0.002)
    m.observe("put", "timeout", 5.0)
    samples = parse_metrics(generate_latest(m.registry).decode())
    assert samples.get(REQUESTS_TOTAL, op="put", outcome="success") == 1
    assert samples.get(REQUESTS_TOTAL, op="put", outcome="timeout") == 1
    assert samples.get(REQUEST_DURATION + "_count", op="put", outcome="success") == 1
    assert samples.get(INFLIGHT) == 0
    assert samples.get(TARGET_RATE) == 0


def test_merged_collector_sums_worker_snapshots() -> None:
    a, b = LoadMetrics(), LoadMetrics()
    for _ in range(3):
        a.observe("put", "success", 0.001)
    b.observe("put", "success", 0.001)
    b.target_rate.set(50)
    a.target_rate.set(50)
    merged = MergedCollector()
    merged.update(0, a.snapshot())
    merged.update(1, b.snapshot())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(merged)
    samples = parse_metrics(generate_latest(registry).decode())
    assert samples.get(REQUESTS_TOTAL, op="put", outcome="success") == 4
    assert samples.get(REQUEST_DURATION + "_bucket", op="put", outcome="success", le="+Inf") == 4
    assert samples.get(TARGET_RATE) == 100


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_are_served_while_the_run_is_live(fake: FakeEtcd, workers: int) -> None:
    port = free_port()
    thread, result = run_load_in_thread(
        [
            f"--endpoints={fake.url}",
            "--rate=100",
            "--duration=3s",
            "--clients=2",
            f"--workers={workers}",
            f"--metrics-port={port}",
            "put",
        ]
    )
    seen = None
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and thread.is_alive():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    samples = parse_metrics(r.read().decode())
            except OSError:
                time.sleep(0.05)
                continue
            # Each worker process ships its share of the target rate (100 / workers): the
            # live sum reaches 100 once every worker has reported, which may be after the
            # first successes.
            live = (samples.get(REQUESTS_TOTAL, op="put", outcome="success") or 0) > 0
            if live and samples.get(TARGET_RATE) == 100:
                seen = samples
                break
            time.sleep(0.05)
    finally:
        thread.join(timeout=20)
    assert seen is not None, "no live request count with the whole target rate on the metrics port"
    assert seen.get(INFLIGHT) is not None
    assert result["code"] == 0
