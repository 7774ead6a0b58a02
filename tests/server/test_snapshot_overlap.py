"""A snapshot does not hold the Ready loop: Readys go on while it runs.

One member (m1) runs its real server and Raft core in-process, as in
test_durability_order.py; the test plays the leader (m2) and holds m1's snapshot open
in its FULL checkpoint (the worker thread waits for the test). While it is open,
heartbeats from m2 are answered, Ready after Ready, and a new entry is persisted and
acknowledged but not applied: the checkpoint must see no entry applied past its index.
Once it ends, the entry is applied and the snapshot is at the first entry's index.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import pytest

from node.raft.messages import Entry, HardState, Message, MessageType
from node.server import EtcdServer
from node.server import bootstrap as bootstrap_module
from node.server import server as server_module
from node.server.apply import Applier
from node.transport import Transport
from node.wal import WAL
from tests.server.configs import fast_m1

TERM = 1
TIMEOUT = 10.0  # seconds: bound on every wait
FIRST_INDEX = 4  # a new cluster's log starts with its 3 members' conf changes


@pytest.fixture
async def member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[EtcdServer, int, list[str]]]:
    events: list[str] = []
    # the leader's first entry makes a snapshot due
    cfg = fast_m1(tmp_path, snapshot_count=FIRST_INDEX)

    class RecordingWAL(WAL):
        def save(
            self, hard_state: HardState | None, entries: Sequence[Entry], must_sync: bool
        ) -> None:
            super().save(hard_state, entries, must_sync)
            events.append("persist")

    class RecordingTransport(Transport):
        async def start(self) -> None:  # no sockets: the test is the network
            return None

        async def stop(self) -> None:
            await self.client.close()

        def send(self, messages: Iterable[Message]) -> None:
            events.extend(f"send {m.type.name}" for m in messages)

    class RecordingApplier(Applier):
        def apply(self, committed: list[Entry]) -> None:
            super().apply(committed)
            events.append("apply")

    monkeypatch.setattr(bootstrap_module, "WAL", RecordingWAL)
    monkeypatch.setattr(server_module, "Transport", RecordingTransport)
    monkeypatch.setattr(server_module, "Applier", RecordingApplier)
    server = EtcdServer(cfg)
    events.clear()
    server.faults.ticks_paused = True  # m1 never campaigns: m2 leads throughout
    await server.start()
    try:
        yield server, {s.name: s.member_id for s in cfg.members}["m2"], events
    finally:
        await server.stop()


async def _until(what: str, done: object) -> None:
    assert callable(done)
    for _ in range(int(TIMEOUT / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _heartbeat(me: int, leader: int) -> Message:
    return Message(type=MessageType.MsgHeartbeat, to=me, frm=leader, term=TERM, commit=FIRST_INDEX)


def _append(me: int, leader: int, index: int) -> Message:
    return Message(
        type=MessageType.MsgApp,
        to=me,
        frm=leader,
        term=TERM,
        log_term=TERM,
        index=index - 1,
        entries=[Entry(term=TERM, index=index)],
        commit=index,
    )


async def test_heartbeats_and_appends_go_on_while_a_snapshot_holds_the_applies(
    member: tuple[EtcdServer, int, list[str]],
) -> None:
    server, leader, events = member
    me = server.member_id
    kv = server.kv
    holding, release = threading.Event(), threading.Event()
    durable = kv.checkpoint_durable

    def held_checkpoint() -> None:  # the worker thread: the FULL checkpoint, held open
        holding.set()
        release.wait(TIMEOUT)
        durable()

    kv.checkpoint_durable = held_checkpoint  # type: ignore[method-assign]
    try:
        server.ctx.inbox.on_peer_message(_append(me, leader, FIRST_INDEX))
        await _until("the snapshot's checkpoint", holding.is_set)
        assert server.applied_index == FIRST_INDEX
        started = len(events)

        for n in (1, 2):  # two Readys in a row: the loop is not waiting for the snapshot
            server.ctx.inbox.on_peer_message(_heartbeat(me, leader))
            await _until(
                f"heartbeat answer {n}",
                lambda n=n: events[started:].count("send MsgHeartbeatResp") >= n,
            )
        # A new entry while the applies are held: persisted and acknowledged, not applied.
        server.ctx.inbox.on_peer_message(_append(me, leader, FIRST_INDEX + 1))
        await _until("the entry's ack", lambda: "send MsgAppResp" in events[started:])
        during = events[started:]
        assert "persist" in during, during
        for _ in range(20):  # loop turns: whatever could run does
            await asyncio.sleep(0.005)
        assert server.applied_index == FIRST_INDEX
    finally:
        release.set()
    await _until("the entry to be applied", lambda: server.applied_index == FIRST_INDEX + 1)
    await _until("the snapshot", lambda: server.snapshots.snapshot_index == FIRST_INDEX)
