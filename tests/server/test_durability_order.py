"""The Ready loop's durability order, watched through a recording WAL, transport and apply.

One member (m1) runs its real server and Raft core in-process; only its WAL, transport
and applier are thin recording subclasses, and the test plays the leader (m2). Per
Ready the rule is (Raft thesis §3.8, etcd's async-storage rule): `messages` may leave
before the persist, then ONE save with fsync, then `messages_after_persist`, then apply.
A Ready with nothing to persist applies first and sends its messages after (so clients'
answers are written first); that Ready must not fsync at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node.mvcc import requests as rq
from node.raft import Ready
from node.raft.messages import Entry, HardState, Message, MessageType
from node.server import EtcdServer
from node.server import bootstrap as bootstrap_module
from node.server import raft_loop as raft_loop_module
from node.server import server as server_module
from node.server.apply import Applier
from node.transport import Transport
from node.wal import WAL
from tests.server.configs import fast_m1

TERM = 1
TIMEOUT = 10.0  # seconds: bound on every wait


@dataclass(slots=True)
class Event:
    """One thing the loop did: `ready`, `send`, `persist` (fsync or not) or `apply`."""

    kind: str
    ready: Ready | None = None
    messages: list[Message] = field(default_factory=list)
    fsync: bool = False


class Leader:
    """Plays m2, the leader of term 1: appends what m1 forwards and commits it at once."""

    def __init__(self, leader_id: int, follower_id: int) -> None:
        self.id = leader_id
        self.follower = follower_id
        self.last_index = 3  # a new cluster's log starts with its members' conf changes
        self.deliver: list[Message] = []  # to m1, in order

    def append(self, data: list[bytes]) -> Message:
        """MsgApp carrying `data` as new entries, committing all of them."""
        prev = self.last_index
        entries = [Entry(term=TERM, index=prev + i + 1, data=d) for i, d in enumerate(data)]
        self.last_index += len(entries)
        return Message(
            type=MessageType.MsgApp,
            to=self.follower,
            frm=self.id,
            term=TERM,
            log_term=TERM if prev else 0,
            index=prev,
            entries=entries,
            commit=self.last_index,
        )

    def receive(self, msg: Message) -> None:
        if msg.type == MessageType.MsgProp:
            self.deliver.append(self.append([e.data for e in msg.entries]))


@pytest.fixture
async def member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[EtcdServer, Leader, list[Event]]]:
    events: list[Event] = []
    cfg = fast_m1(tmp_path)
    ids = {spec.name: spec.member_id for spec in cfg.members}
    leader = Leader(ids["m2"], ids["m1"])

    class RecordingWAL(WAL):
        def save(
            self, hard_state: HardState | None, entries: Sequence[Entry], must_sync: bool
        ) -> None:
            super().save(hard_state, entries, must_sync)
            events.append(Event("persist", fsync=must_sync))

    class RecordingTransport(Transport):
        async def start(self) -> None:  # no sockets: the test is the network
            return None

        async def stop(self) -> None:
            await self.client.close()

        def can_deliver(self, peer_id: int) -> bool:  # the test's leader is always reachable
            return True

        def send(self, messages: Iterable[Message]) -> None:
            sent = list(messages)
            events.append(Event("send", messages=sent))
            for msg in sent:
                leader.receive(msg)

    class RecordingApplier(Applier):
        def apply(self, committed: list[Entry]) -> None:
            super().apply(committed)
            events.append(Event("apply"))

    monkeypatch.setattr(bootstrap_module, "WAL", RecordingWAL)
    monkeypatch.setattr(server_module, "Transport", RecordingTransport)
    monkeypatch.setattr(server_module, "Applier", RecordingApplier)
    server = EtcdServer(cfg)
    events.clear()  # the bootstrap's own save of the members' conf changes
    server.faults.ticks_paused = True  # m1 never campaigns: m2 leads throughout
    handle_ready = server.loop.handle_ready

    async def recorded(rd: Ready) -> None:
        events.append(Event("ready", ready=rd))
        await handle_ready(rd)

    monkeypatch.setattr(server.loop, "handle_ready", recorded)
    await server.start()
    try:
        yield server, leader, events
    finally:
        await server.stop()


def by_ready(events: list[Event]) -> list[tuple[Ready, list[Event]]]:
    """The events of each Ready, in the order the loop produced them."""
    groups: list[tuple[Ready, list[Event]]] = []
    for event in events:
        if event.kind == "ready":
            assert event.ready is not None
            groups.append((event.ready, []))
        elif groups:
            groups[-1][1].append(event)
    return groups


def step(kind: str, rd: Ready, event: Event) -> str:
    """Name an event by the rule it falls under: messages / persist / after_persist / apply."""
    if event.kind != "send":
        return kind
    requests = {id(m) for m in rd.messages}
    acks = {id(m) for m in rd.messages_after_persist}
    assert all(id(m) in requests for m in event.messages) or all(
        id(m) in acks for m in event.messages
    ), "one send mixes requests and responses"
    return "messages" if id(event.messages[0]) in requests else "after_persist"


def order_of(rd: Ready, group: list[Event]) -> list[str]:
    return [step(e.kind, rd, e) for e in group]


async def deliver_all(server: EtcdServer, leader: Leader) -> None:
    """Hand m1 whatever the leader has for it, as the transport would."""
    while leader.deliver:
        server.ctx.inbox.on_peer_message(leader.deliver.pop(0))
        await asyncio.sleep(0)


async def _follow(server: EtcdServer, leader: Leader) -> None:
    """Hand m1 m2's empty entry of its term; wait (bounded) until m1 follows and applied it."""
    server.ctx.inbox.on_peer_message(leader.append([b""]))
    for _ in range(int(TIMEOUT / 0.01)):
        if server.lead == leader.id and server.applied_index == 4:
            break
        await asyncio.sleep(0.01)


async def _append_two_committed(server: EtcdServer, leader: Leader) -> None:
    """Hand m1 an append of two entries committed with it; wait (bounded) for their apply."""
    server.ctx.inbox.on_peer_message(leader.append([b"", b""]))
    for _ in range(int(TIMEOUT / 0.01)):
        if server.applied_index == 6:
            break
        await asyncio.sleep(0.01)
    assert server.applied_index == 6


async def test_each_ready_sends_requests_then_persists_once_then_acks_then_applies(
    member: tuple[EtcdServer, Leader, list[Event]],
) -> None:
    server, leader, events = member
    inbox = server.ctx.inbox
    await _follow(server, leader)
    assert server.lead == leader.id

    # In one loop turn: a client proposal on m1 (forwarded to m2: a request in
    # `messages`) and m2's next append (persisted, acked in `messages_after_persist`,
    # committed and applied): one Ready with all four steps.
    put = asyncio.create_task(server.propose(rq.PutRequest(key=b"k", value=b"v")))
    inbox.on_peer_message(leader.append([b""]))
    for _ in range(int(TIMEOUT / 0.01)):
        await deliver_all(server, leader)
        if put.done():
            break
        await asyncio.sleep(0.01)
    resp = await asyncio.wait_for(put, TIMEOUT)
    assert isinstance(resp, rq.PutResponse)

    readies = by_ready(events)
    full = [
        order_of(rd, group)
        for rd, group in readies
        if rd.messages and rd.messages_after_persist and rd.must_sync and rd.committed_entries
    ]
    assert full == [["messages", "persist", "after_persist", "apply"]]
    for rd, group in readies:
        order = order_of(rd, group)
        fsyncs = [e for e in group if e.kind == "persist" and e.fsync]
        if rd.must_sync:
            assert len(fsyncs) == 1, order  # one save, one fsync per Ready
            at = order.index("persist")
            assert "after_persist" not in order[:at], order
            assert "apply" not in order[:at], order
            assert "messages" not in order[at:], order
            if "apply" in order:
                assert "after_persist" not in order[order.index("apply") :], order
        else:
            assert not fsyncs, order
            assert rd.entries == [], order
            if rd.committed_entries and "messages" in order:
                # nothing to persist: the answers go first, the messages after the apply
                assert order.index("apply") < order.index("messages"), order


async def test_the_ack_leaves_right_after_the_fsync_before_the_in_memory_log(
    member: tuple[EtcdServer, Leader, list[Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower's ack waits for its fsync and nothing else: the in-memory log takes the
    entries after the ack left (the leader's commit, and its client's answer, wait for
    that ack), and the apply comes after both."""
    server, leader, events = member
    storage_type = type(server.ctx.opened.storage)
    append = storage_type.append

    def recorded_append(self: Any, entries: list[Entry]) -> None:
        events.append(Event("log"))
        append(self, entries)

    monkeypatch.setattr(storage_type, "append", recorded_append)
    await _follow(server, leader)
    assert server.applied_index == 4

    await _append_two_committed(server, leader)

    orders = [
        order_of(rd, group)
        for rd, group in by_ready(events)
        if rd.entries and rd.messages_after_persist and rd.committed_entries
    ]
    assert orders, "no Ready persisted, acked and applied entries"
    for order in orders:
        assert order == ["persist", "after_persist", "log", "apply"], order


async def test_the_follower_gives_way_to_the_leader_it_acked_before_applying(
    member: tuple[EtcdServer, Leader, list[Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the ack and the apply the follower yields its CPU (`give_way`): the leader
    the ack woke was placed on this CPU and would otherwise wait for the whole apply.
    A Ready with nothing to apply does not yield (the loop sleeps next anyway)."""
    server, leader, events = member
    monkeypatch.setattr(raft_loop_module, "give_way", lambda: events.append(Event("give_way")))
    await _follow(server, leader)
    events.clear()

    await _append_two_committed(server, leader)

    for rd, group in by_ready(events):
        order = order_of(rd, group)
        if rd.messages_after_persist and rd.committed_entries:
            assert order == ["persist", "after_persist", "give_way", "apply"], order
        else:
            assert "give_way" not in order, order
    assert any(e.kind == "give_way" for e in events)
