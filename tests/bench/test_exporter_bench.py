"""Cost of the exporter on the request path and per scrape (`make bench`).

Reports nanoseconds per gateway request for the full per-request instrumentation
(grpc started + msg received + client requests + received bytes at the start; handled +
msg sent + request-duration observe + sent bytes at the end), and milliseconds per
/metrics render. Numbers only: nothing here asserts a timing (2 shared cores are noisy).
"""

from __future__ import annotations

import statistics
import time

import pytest
from prometheus_client import CollectorRegistry

from exporter.exposition import render
from exporter.metrics import MemberMetrics
from tests.exporter.fake_state import PEER_A, PEER_B, FakeState

pytestmark = pytest.mark.bench

ROUNDS = 5
REQUESTS = 100_000


def _per_request_ns(metrics: MemberMetrics) -> list[float]:
    put = metrics.rpc("etcdserverpb.KV", "Put")
    duration = metrics.request_duration["Put"]
    started, finished = metrics.request_started, metrics.request_finished
    results = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(REQUESTS):
            started(put, 120)
            finished(put, duration, "OK", 0.004, 60)
        results.append((time.perf_counter_ns() - t0) / REQUESTS)
    return results


def test_bench_per_request_instrumentation() -> None:
    metrics = MemberMetrics(CollectorRegistry(), peer_ids=(PEER_A, PEER_B), process_metrics=False)
    per_request = _per_request_ns(metrics)

    fsync = metrics.observe_wal_fsync
    t0 = time.perf_counter_ns()
    for _ in range(REQUESTS):
        fsync(0.002)
    fsync_ns = (time.perf_counter_ns() - t0) / REQUESTS

    print(
        f"\nexporter per-request instrumentation: best {min(per_request):.0f} ns,"
        f" median {statistics.median(per_request):.0f} ns over {ROUNDS}x{REQUESTS} requests"
        f"\nexporter wal fsync observe: {fsync_ns:.0f} ns"
    )
    total = ROUNDS * REQUESTS
    assert (
        metrics.registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_code": "OK",
                "grpc_method": "Put",
                "grpc_service": "etcdserverpb.KV",
                "grpc_type": "unary",
            },
        )
        == total
    )


def test_bench_scrape_render() -> None:
    metrics = MemberMetrics(CollectorRegistry(), state=FakeState(), peer_ids=(PEER_A, PEER_B))
    for kind in ("Range", "Put", "Txn", "DeleteRange"):
        metrics.request_duration[kind].ok.observe(0.01)
        metrics.on_apply_request(kind, True, 0.0001)
    body = render(metrics.registry)
    timings = []
    for _ in range(20):
        t0 = time.perf_counter_ns()
        render(metrics.registry)
        timings.append((time.perf_counter_ns() - t0) / 1e6)
    print(
        f"\nexporter /metrics render: best {min(timings):.1f} ms, median"
        f" {statistics.median(timings):.1f} ms, {len(body.splitlines())} lines,"
        f" {len(body) / 1024:.0f} KiB"
    )
    assert b"etcd_server_has_leader 1.0" in body
