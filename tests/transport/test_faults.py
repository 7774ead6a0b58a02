"""Lab faults on the sending side: drop is a one-way partition, delay holds but delivers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from node.raft.messages import Message, MessageType
from node.transport import PeerFault
from tests.transport.harness import Cluster, eventually


def hb(frm: int, to: int, commit: int) -> Message:
    return Message(MessageType.MsgHeartbeat, to=to, frm=frm, term=1, commit=commit)


async def test_drop_fault_is_a_one_way_partition_and_clearing_restores(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(3)
    m1, m2, m3 = (cluster.members[i] for i in (1, 2, 3))
    m1.transport.set_fault(2, drop=True)
    assert m1.transport.faults() == {2: PeerFault(drop=True)}
    assert not m1.transport.stats()[2].active

    m1.transport.send([hb(1, 2, 1), hb(1, 2, 2), hb(1, 3, 1)])
    m2.transport.send([hb(2, 1, 1)])  # the other direction still works
    await m3.rec.wait(lambda: len(m3.rec.messages) == 1, "traffic to the unfaulted peer")
    await m1.rec.wait(lambda: len(m1.rec.messages) == 1, "reverse direction")
    assert m1.transport.stats()[2].dropped_fault == 2
    assert m1.transport.stats()[2].send_failures == 2

    m1.transport.clear_faults()
    assert m1.transport.faults() == {}
    m1.transport.send([hb(1, 2, 3)])
    await m2.rec.wait(lambda: len(m2.rec.messages) >= 1, "traffic after clearing")
    # Per-peer order is kept, so had the dropped ones been delivered they would come first.
    assert [m.commit for m in m2.rec.messages] == [3]
    assert m1.transport.stats()[2].active


async def test_two_way_partition_needs_both_sides_and_blocks_probes(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2)
    a, b = cluster.members[1], cluster.members[2]
    a.transport.set_fault(2, drop=True)
    b.transport.set_fault(1, drop=True)
    before = a.transport.stats()[2].probe_failures
    await eventually(lambda: a.transport.stats()[2].probe_failures > before, "a failed probe")
    a.transport.send([hb(1, 2, 1)])
    b.transport.send([hb(2, 1, 1)])
    a.transport.clear_faults()
    b.transport.clear_faults()
    a.transport.send([hb(1, 2, 2)])
    b.transport.send([hb(2, 1, 2)])
    await a.rec.wait(lambda: len(a.rec.messages) == 1, "b->a after healing")
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "a->b after healing")
    assert a.rec.messages[0].commit == b.rec.messages[0].commit == 2


async def test_delay_fault_holds_every_message_but_keeps_order_and_delivers(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2)
    a, b = cluster.members[1], cluster.members[2]
    loop = asyncio.get_running_loop()
    delay = 0.3
    a.transport.set_fault(2, delay_seconds=delay)
    assert a.transport.faults() == {2: PeerFault(delay_seconds=delay)}
    sent_at: dict[int, float] = {}
    arrived_at: dict[int, float] = {}
    original = b.rec.on_message

    def stamp(msg: Message) -> None:
        arrived_at[msg.commit] = loop.time()
        original(msg)

    b.transport._on_message = stamp
    for i in range(3):
        sent_at[i] = loop.time()
        a.transport.send([hb(1, 2, i)])
        await asyncio.sleep(0.05)  # spread the sends: each must be held on its own clock
    await b.rec.wait(lambda: len(b.rec.messages) == 3, "delayed messages", within=10)
    assert [m.commit for m in b.rec.messages] == [0, 1, 2]
    for i in range(3):
        assert arrived_at[i] - sent_at[i] >= delay - 0.01, f"message {i} was not held"

    a.transport.clear_faults()
    a.transport.send([hb(1, 2, 99)])
    await b.rec.wait(lambda: len(b.rec.messages) == 4, "undelayed message")


async def test_delay_fault_shows_up_in_rtt(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2)
    a = cluster.members[1]
    a.transport.set_fault(2, delay_seconds=0.2)
    # A probe already in flight may still report a fast round trip; the next ones may not.
    await a.rec.wait(
        lambda: any(rtt >= 0.2 for rtt in a.rec.rtts.get(2, [])), "an RTT including the delay"
    )


async def test_bad_fault_arguments_are_rejected(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(2)
    member = cluster.build(1)
    with pytest.raises(ValueError, match="unknown peer"):
        member.transport.set_fault(9, drop=True)
    with pytest.raises(ValueError, match=">= 0"):
        member.transport.set_fault(2, delay_seconds=-1)
