"""RTT probes are timed and answered by each member's probe process, not its event loop.

A member's loop busy with an apply must not show up as network latency (etcd's prober
runs in goroutines of its own); a stopped member must still answer no probe; a peer
that does not upgrade probe connections is probed over plain HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from node.transport import TransportOptions
from node.transport import peer as peer_module
from tests.transport.harness import Cluster, Member, eventually

BLOCK_SECONDS = 1.0  # under the probe process's 1.5 s alive window


async def test_a_probe_is_answered_and_timed_while_both_loops_are_blocked(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2, options=TransportOptions(probe_interval=60.0))
    a, b = cluster.members[1], cluster.members[2]
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "the probe on connect (link is up)")
    helper, sender = a.transport._probe_helper, a.transport._senders[2]
    assert helper.running
    assert b.transport._probe_helper.running
    probe = asyncio.create_task(helper.probe(2, sender.url, sender._headers, 5.0, 0.0))
    await asyncio.sleep(0)  # the request is with the probe process now
    time.sleep(BLOCK_SECONDS)  # noqa: ASYNC251 -- a busy apply: no member's loop turns
    outcome = await probe
    assert outcome is not None
    assert outcome.ok, outcome
    assert outcome.rtt < BLOCK_SECONDS  # the loops' stall is not in the round trip


async def test_a_member_whose_loop_stopped_answers_no_probe(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    options = TransportOptions(probe_interval=0.1, probe_timeout=0.3)
    cluster = await connected_cluster(2, options=options)
    a, b = cluster.members[1], cluster.members[2]
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "an RTT while b runs")
    alive = b.transport._probe_helper._alive
    assert alive is not None
    alive.cancel()  # as if b were SIGSTOPped: its loop no longer tells the process it runs
    failures = a.transport.stats()[2].probe_failures
    await eventually(
        lambda: a.transport.stats()[2].probe_failures >= failures + 2, "a's probes time out"
    )
    b.transport._probe_helper._send_alive()  # b runs again: its probes are answered
    a.rec.rtts.clear()
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "an RTT after b resumed")


async def test_a_peer_without_a_probe_process_is_probed_over_http(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, options=TransportOptions(probe_interval=0.1))
    b = cluster.build(2)
    b.transport._probe_helper.start = lambda: None  # type: ignore[method-assign]
    await cluster.serve(b)
    a = await cluster.start(1)
    await cluster.wait_connected()
    await eventually(lambda: not a.transport._senders[2]._probe_upgrades, "a falls back")
    a.rec.rtts.clear()
    await a.rec.wait(lambda: len(a.rec.rtts.get(2, [])) >= 2, "RTTs over plain HTTP")


async def test_the_probe_process_ends_with_the_transport(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2)
    a = cluster.members[1]
    proc = a.transport._probe_helper._proc
    assert proc is not None
    assert proc.poll() is None
    await a.stop()
    del cluster.members[1]
    assert proc.poll() is not None


async def test_a_peer_whose_probe_side_was_late_is_asked_to_upgrade_again(
    make_cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A member's peer port opens before its transport (and probe process) starts: a probe
    # answered in that window falls back to HTTP, but not for good.
    monkeypatch.setattr(peer_module, "PROBE_UPGRADE_RETRY_SECONDS", 0.3)
    cluster = make_cluster(2, options=TransportOptions(probe_interval=0.1))
    b = cluster.build(2)
    start = b.transport._probe_helper.start
    b.transport._probe_helper.start = lambda: None  # type: ignore[method-assign]
    await cluster.serve(b)
    a = await cluster.start(1)
    await cluster.wait_connected()
    sender = a.transport._senders[2]
    await eventually(lambda: not sender._probe_upgrades, "a falls back to HTTP probes")
    start()  # b's probe side is up now
    assert b.transport._probe_helper.running
    await eventually(lambda: sender._probe_upgrades, "a asks b to upgrade again", within=10)
    ok = a.transport.stats()[2].probes_ok
    await eventually(lambda: a.transport.stats()[2].probes_ok > ok + 2, "upgraded probes")
    assert sender._probe_upgrades


async def _a_probe_held_by_b(make_cluster: Callable[..., Cluster]) -> tuple[Member, Member]:
    """Members 1 and 2 connected, 2 with its probing deferred and 1's probe of it held."""
    cluster = make_cluster(2, options=TransportOptions(probe_interval=0.1))
    b = cluster.build(2)
    b.transport.defer_probing()
    await cluster.serve(b)
    a = await cluster.start(1)
    await cluster.wait_connected()
    helper = b.transport._probe_helper
    await eventually(lambda: bool(helper._held), "a's probe of b waits for b's process")
    return a, b


async def test_deferred_probing_holds_a_peers_probe_until_the_process_runs(
    make_cluster: Callable[..., Cluster],
) -> None:
    # A restarted member starts its probe process and probes only once its peers are
    # connected (node/member/serve.py); a peer's probe that arrives before then waits for
    # the process instead of being answered plainly (which would move that peer's probes
    # of us onto its loop).
    a, b = await _a_probe_held_by_b(make_cluster)
    helper = b.transport._probe_helper
    assert not helper.running
    assert b.transport.stats()[1].probes_ok == 0  # b's own prober has not probed yet
    b.transport.start_probing()
    assert helper.running
    await a.rec.wait(lambda: bool(a.rec.rtts.get(2)), "a's held probe answered by b's process")
    await b.rec.wait(lambda: bool(b.rec.rtts.get(1)), "b probes a once it may")
    assert a.transport._senders[2]._probe_upgrades  # never fell back to plain probes
    assert not helper._held


async def test_a_held_probe_is_closed_when_the_transport_stops_first(
    make_cluster: Callable[..., Cluster],
) -> None:
    a, b = await _a_probe_held_by_b(make_cluster)
    helper = b.transport._probe_helper
    failures = a.transport.stats()[2].probe_failures
    await b.transport.stop()
    assert not helper._held
    assert helper._proc is None  # stopped before it ever started: no process was spawned
    await eventually(
        lambda: a.transport.stats()[2].probe_failures > failures, "a's probe of b fails"
    )
