"""The open-loop schedule: what is sent, when it was due, and what a stall does to latency."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from loadgen.config import LoadConfig, WorkerShare
from loadgen.recorder import decode
from loadgen.runner import Tickets, immediate_start, run_worker
from tests.loadgen.conftest import assert_open_loop_rate_held, run_load
from tests.loadgen.fake_etcd import FakeEtcd


def cfg(**kw: object) -> LoadConfig:
    base: dict[str, object] = {"workload": "put", "endpoints": ("http://127.0.0.1:9",)}
    base.update(kw)
    return LoadConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_together_follow_one_global_schedule(workers: int) -> None:
    c = cfg(rate=100.0, duration=2.0)
    due: list[float] = []
    for i in range(workers):
        t = Tickets(c, WorkerShare(index=i, count=workers, clients=1, conns=1), t0=0.0)
        while (k := t.take(now=0.0)) is not None:
            due.append(t.intended(k))
    assert sorted(due) == pytest.approx([k / 100.0 for k in range(200)])


@pytest.mark.parametrize(("total", "workers"), [(10, 3), (7, 7), (1000, 4), (2, 3)])
def test_total_is_split_exactly_among_workers(total: int, workers: int) -> None:
    shares = [WorkerShare(index=i, count=workers, clients=1, conns=1) for i in range(workers)]
    assert sum(s.tickets(total) for s in shares) == total


def test_closed_loop_duration_stops_issuing_at_the_deadline() -> None:
    t = Tickets(cfg(duration=1.0), WorkerShare(index=0, count=1, clients=1, conns=1), t0=10.0)
    assert t.take(now=10.5) == 0
    assert t.take(now=11.0) is None


def test_open_loop_run_sends_exactly_the_scheduled_count(fake: FakeEtcd) -> None:
    code, report = run_load(
        [f"--endpoints={fake.url}", "--clients=4", "--rate=200", "--duration=1s", "put"]
    )
    assert code == 0
    assert report["sent"] == 200
    assert report["succeeded"] == fake.state.puts == 200
    assert report["latency_seconds"]["fastest"] >= 0  # never timed from before the send


def slow_requests(result_hist: str, threshold_s: float) -> int:
    hist = decode(result_hist)
    return sum(
        item.count_added_in_this_iter_step
        for item in hist.get_recorded_iterator()
        if item.value_iterated_to >= threshold_s * 1e6
    )


async def run_through_stall(fake: FakeEtcd, rate: float) -> int:
    """50 puts from one client while the server stalls for its first 0.6 s; slow ones counted."""
    c = cfg(endpoints=(fake.url,), rate=rate, total=50, timeout=5.0)
    share = WorkerShare(index=0, count=1, clients=1, conns=1)
    fake.stall()
    timer = threading.Timer(0.6, fake.release)
    timer.start()
    try:
        result = await run_worker(c, share, immediate_start)
    finally:
        timer.cancel()
        fake.release()
    assert result.ops["put"].outcomes == {"success": 50}
    return slow_requests(result.ops["put"].histogram, 0.1)


async def test_open_loop_stall_shows_as_latency_of_every_request_due_during_it(
    fake: FakeEtcd,
) -> None:
    # Due every 20 ms: about 25 requests were due more than 100 ms before the stall ended.
    assert await run_through_stall(fake, rate=50.0) >= 20


async def test_closed_loop_stall_hides_behind_one_slow_request(fake: FakeEtcd) -> None:
    # The contrast that makes open loop necessary: only the stuck request looks slow.
    assert await run_through_stall(fake, rate=0.0) <= 5


def test_requests_never_sent_before_the_hard_stop_are_counted_not_dropped(
    fake: FakeEtcd,
) -> None:
    fake.stall()  # nothing is ever answered: every sent request times out
    code, report = run_load(
        [
            f"--endpoints={fake.url}",
            "--clients=1",
            "--rate=100",
            "--duration=0.5s",
            "--timeout=0.4s",
            "put",
        ]
    )
    assert code == 0
    assert report["succeeded"] == 0
    assert report["errors"]["timeout"] == report["sent"] > 0
    assert report["unsent"] > 0
    assert report["sent"] + report["unsent"] == 50
    assert any("never sent" in note for note in report["notes"])


def run_of(
    sent_per_second: list[int], elapsed: float
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """A synthetic report and CSV rows: every request sent succeeded in its second."""
    rows = [
        {"second": float(s), "sent": float(n), "throughput": float(n)}
        for s, n in enumerate(sent_per_second)
    ]
    total = sum(sent_per_second)
    report = {
        "sent": total,
        "succeeded": total,
        "total_seconds": elapsed,
        "requests_per_second": total / elapsed,
    }
    return report, rows


def test_the_rate_check_accepts_a_run_that_kept_its_schedule() -> None:
    report, rows = run_of([50, 50, 50], elapsed=3.0)
    assert_open_loop_rate_held(report, rows, rate=50, wall_seconds=3.1)


@pytest.mark.parametrize(
    ("sent_per_second", "elapsed", "wall"),
    [
        ([150], 0.3, 0.4),  # everything at once
        ([150, 0, 0], 2.99, 3.1),  # at once, then idle until the end: ahead of schedule
        ([0, 0, 150], 2.99, 3.1),  # idle, then everything in the last second: a burst
        ([50, 50, 50], 2.99, 1.5),  # the wall clock says it finished too early
        ([20, 20, 20, 20, 20, 20, 30], 7.0, 7.1),  # far too slow
    ],
)
def test_the_rate_check_refuses_a_run_that_did_not(
    sent_per_second: list[int], elapsed: float, wall: float
) -> None:
    report, rows = run_of(sent_per_second, elapsed)
    with pytest.raises(AssertionError):
        assert_open_loop_rate_held(report, rows, rate=50, wall_seconds=wall)
