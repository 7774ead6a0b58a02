"""The RTT prober reports every probe (on_probe), first right after connecting, and the
monitor observes each peer's smoothed RTT (on_rtt, the histogram's value; rttmonitor.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from node.transport import TransportOptions
from node.transport.rttmonitor import MonitorTiming
from tests.transport.harness import Cluster, Member


async def test_rtt_observer_receives_observations_for_every_peer(
    make_cluster: Callable[..., Cluster],
) -> None:
    # A long interval: only the probe fired on connect can be seen within the test.
    cluster = make_cluster(3, options=TransportOptions(probe_interval=60.0, backoff_max=0.1))
    await cluster.start_all()
    for member in cluster.members.values():
        peers = {p for p in cluster.members if p != member.id}

        def probed(member: Member = member, peers: set[int] = peers) -> bool:
            return set(member.rec.rtts) == peers

        await member.rec.wait(probed, f"RTT for every peer of member {member.id}")
        for peer in peers:
            assert all(0 < rtt < 5 for rtt in member.rec.rtts[peer])
            stats = member.transport.stats()[peer]
            assert stats.probes_ok >= 1
            assert stats.last_rtt_seconds is not None


async def test_the_monitor_observes_each_peers_smoothed_rtt(
    make_cluster: Callable[..., Cluster],
) -> None:
    # A short monitor interval samples every probe: the SRTT follows the probes, 1/8 each.
    options = TransportOptions(probe_interval=0.05, rtt_monitor_interval=0.05)
    cluster = make_cluster(2, options=options)
    await cluster.start_all()
    a = cluster.members[1]
    await a.rec.wait(lambda: len(a.rec.rtts.get(2, [])) >= 2, "two answered probes")
    await a.rec.wait(lambda: any(v > 0 for v in a.rec.srtts.get(2, [])), "a smoothed RTT")
    sender = a.transport._senders[2]
    assert sender.rtt.every == 1
    assert sender.rtt.healthy
    # an average of probes weighted 1/8 from 0: below the largest probe seen so far
    assert 0 < a.transport.stats()[2].srtt_seconds <= max(a.rec.rtts[2])


def test_by_default_one_probe_in_four_feeds_the_srtt_as_etcds_prober() -> None:
    defaults = TransportOptions()
    timing = MonitorTiming(defaults.rtt_monitor_interval)
    assert timing.sample_every(defaults.probe_interval) == 4
    assert (timing.healthy, timing.unhealthy) == (30.0, 5.0)


async def test_observer_bound_after_construction_receives_rtts(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, options=TransportOptions(probe_interval=0.05))
    await cluster.start_all()
    a = cluster.members[1]
    a.transport.set_observer(None)  # back to the null observer: nothing recorded
    a.rec.rtts.clear()
    a.transport.set_observer(a.rec)
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "an RTT through the new observer")


async def test_a_delay_on_both_sides_shows_as_two_one_way_delays(
    make_cluster: Callable[..., Cluster],
) -> None:
    # The probe's request crosses a's delayed link and its answer crosses b's: the
    # measured round trip must hold both, as a slow cable's would.
    delay = 0.05
    cluster = make_cluster(2, options=TransportOptions(probe_interval=0.05))
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "a first RTT before the fault")
    a.transport.set_fault(2, delay_seconds=delay)
    b.transport.set_fault(1, delay_seconds=delay)
    # a probe already in flight (timed by the probe process) lands without the delays
    await a.rec.wait(lambda: max(a.rec.rtts[2]) >= 2 * delay, "a first delayed RTT")
    a.rec.rtts.clear()
    await a.rec.wait(lambda: len(a.rec.rtts.get(2, [])) >= 3, "three RTTs with the delay")
    assert all(rtt >= 2 * delay for rtt in a.rec.rtts[2]), a.rec.rtts[2]


async def test_a_peer_dropping_its_answers_fails_the_probe(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, options=TransportOptions(probe_interval=0.05))
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "a first RTT before the fault")
    failures = a.transport.stats()[2].probe_failures
    b.transport.set_fault(1, drop=True)  # b -> a cut: a's probes get no answer

    async def failures_reach(n: int) -> None:
        for _ in range(200):  # failures record no event: poll, 10 s at most
            if a.transport.stats()[2].probe_failures >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"probe failures stayed below {n}")

    await failures_reach(failures + 1)
    a.rec.rtts.clear()  # a probe answered before the cut may have landed until now
    await failures_reach(failures + 3)
    assert not a.rec.rtts.get(2), "no round trip is measured while the answers are dropped"
