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


def _handling_lines_ns(metrics: MemberMetrics) -> list[float]:
    """The lines a front end runs at a call's end for grpc_server_handling_seconds."""
    rpc = metrics.rpc("etcdserverpb.KV", "Range")
    handled, clock = metrics.call_handled, time.perf_counter
    started = clock()
    results = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(REQUESTS):
            if rpc.timed:
                handled(rpc, clock() - started)
        results.append((time.perf_counter_ns() - t0) / REQUESTS)
    return results


def test_bench_handling_seconds_per_call_and_per_scrape() -> None:
    """--metrics=basic pays the `rpc.timed` check; extensive a clock read and an observe."""
    empty = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(REQUESTS):
            pass
        empty.append((time.perf_counter_ns() - t0) / REQUESTS)
    loop_ns = min(empty)
    basic = MemberMetrics(CollectorRegistry(), process_metrics=False)
    extensive = MemberMetrics(CollectorRegistry(), process_metrics=False, extensive=True)
    basic_ns = min(_handling_lines_ns(basic)) - loop_ns
    extensive_ns = min(_handling_lines_ns(extensive)) - loop_ns
    renders = {}
    for name, metrics in (("basic", basic), ("extensive", extensive)):
        timings = []
        for _ in range(20):
            t0 = time.perf_counter_ns()
            body = render(metrics.registry)
            timings.append((time.perf_counter_ns() - t0) / 1e6)
        renders[name] = (min(timings), len(body.splitlines()))
    print(
        f"\nhandling seconds per call: basic {basic_ns:.0f} ns, extensive {extensive_ns:.0f} ns"
        f" (loop overhead {loop_ns:.0f} ns removed)"
        f"\n/metrics render: basic {renders['basic'][0]:.1f} ms, {renders['basic'][1]} lines;"
        f" extensive {renders['extensive'][0]:.1f} ms, {renders['extensive'][1]} lines"
    )
    assert renders["extensive"][1] - renders["basic"][1] == 41 * 14 + 2  # etcd's 576 lines
