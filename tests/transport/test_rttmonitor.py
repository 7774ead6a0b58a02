"""etcd 3.4's RTT metric semantics: SRTT (1/8 weight, from 0), observed 5 s after start,
then every 30 s while healthy and 5 s while not. No wall clock: the sleep is a fake that
records each wait and stops the loop after a fixed number of checks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from node.transport.rttmonitor import MonitorTiming, SmoothedRtt, run_monitor

Probe = tuple[bool] | tuple[bool, float]  # SmoothedRtt.record's arguments: ok[, rtt]


class _Done(Exception):
    """Raised by the fake sleep to end the monitor after its scripted checks."""


def test_srtt_starts_at_zero_and_weighs_each_answer_one_eighth() -> None:
    s = SmoothedRtt()
    assert (s.srtt, s.healthy) == (0.0, False)
    s.record(True, 0.008)
    assert s.srtt == pytest.approx(0.001)  # 7/8 * 0 + 1/8 * 8 ms
    s.record(True, 0.008)
    assert s.srtt == pytest.approx(0.001 * 0.875 + 0.001)
    assert s.healthy


def test_a_failed_probe_marks_unhealthy_and_keeps_the_srtt() -> None:
    s = SmoothedRtt()
    s.record(True, 0.016)
    s.record(False)
    assert s.srtt == pytest.approx(0.002)
    assert s.healthy is False
    s.record(True, 0.016)
    assert s.healthy


def test_one_probe_in_every_is_sampled_starting_with_the_first() -> None:
    s = SmoothedRtt(every=4)
    sampled = [s.record(True, 1.0) for _ in range(9)]
    assert sampled == [True, False, False, False, True, False, False, False, True]
    assert s.srtt == pytest.approx(1.0 - 0.875**3)
    with pytest.raises(ValueError, match="every"):
        SmoothedRtt(every=0)


def test_our_one_second_probes_sample_as_etcds_four_second_prober() -> None:
    etcd = MonitorTiming()
    assert (etcd.healthy, etcd.unhealthy) == (30.0, 5.0)
    assert etcd.sample_every(1.0) == 4
    assert etcd.sample_every(5.0) == 1  # slower probes than etcd's: every one counts
    lab = MonitorTiming(1.0)  # the compressed-time lab's flag
    assert (lab.healthy, lab.unhealthy, lab.sample_every(1.0)) == (1.0, 1.0, 1)


def _run(
    status: SmoothedRtt, timing: MonitorTiming, script: Sequence[Probe | None]
) -> tuple[list[float], list[float]]:
    """Run the monitor; before each check apply the next script item (a probe outcome
    tuple, or None for nothing new). Returns (the waits, the observed values)."""
    waits: list[float] = []
    observed: list[float] = []
    steps = iter(script)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        try:
            step = next(steps)
        except StopIteration:
            raise _Done from None
        if step is not None:
            assert isinstance(step, tuple)
            status.record(*step)

    with pytest.raises(_Done):
        asyncio.run(run_monitor(status, timing, observed.append, sleep))
    return waits, observed


def test_monitor_observes_the_srtt_on_etcds_cadence() -> None:
    s = SmoothedRtt()
    script = [(True, 0.008), None, (False,), None, (True, 0.008)]
    waits, observed = _run(s, MonitorTiming(), script)
    # first after 5 s; healthy -> 30 s; unhealthy -> 5 s (twice); healthy again -> 30 s
    assert waits == [5.0, 30.0, 30.0, 5.0, 5.0, 30.0]
    # the SRTT is observed in either state, as etcd 3.4 does
    assert observed == pytest.approx([0.001, 0.001, 0.001, 0.001, 0.001875])


def test_monitor_observes_zero_before_any_answer() -> None:
    waits, observed = _run(SmoothedRtt(), MonitorTiming(), [None, None])
    assert waits == [5.0, 5.0, 5.0]
    assert observed == [0.0, 0.0]


def test_a_short_lab_interval_bounds_every_wait() -> None:
    waits, _ = _run(SmoothedRtt(), MonitorTiming(1.0), [(True, 0.1), (False,), None])
    assert waits == [1.0, 1.0, 1.0, 1.0]
