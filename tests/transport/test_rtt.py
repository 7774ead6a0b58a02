"""The RTT prober reports an observation for every peer, first right after connecting."""

from __future__ import annotations

from collections.abc import Callable

from node.transport import TransportOptions
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
