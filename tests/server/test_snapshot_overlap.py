"""A snapshot does not hold the Ready loop: the next Ready's messages leave while it runs.

One member (m1) runs its real server and Raft core in-process, as in
test_durability_order.py; the test plays the leader (m2) and holds m1's snapshot open
(a stand-in for the checkpoint's worker thread). While it is open, a heartbeat from m2
is answered (the answer is one of a Ready's `messages`), and nothing is persisted or
applied until the snapshot ends: it must see no entry applied past its index.
"""

from __future__ import annotations

import asyncio
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


async def test_a_heartbeat_is_answered_while_a_snapshot_runs_and_nothing_is_applied(
    member: tuple[EtcdServer, int, list[str]],
) -> None:
    server, leader, events = member
    me = server.member_id
    release = asyncio.Event()

    async def held_snapshot() -> None:
        events.append("snapshot start")
        await release.wait()
        server.snapshots.snapshot_index = server.applied_index
        events.append("snapshot end")

    server.snapshots.maybe_snapshot = held_snapshot  # type: ignore[method-assign]
    server.ctx.inbox.on_peer_message(
        Message(
            type=MessageType.MsgApp,
            to=me,
            frm=leader,
            term=TERM,
            log_term=TERM,
            index=FIRST_INDEX - 1,
            entries=[Entry(term=TERM, index=FIRST_INDEX)],
            commit=FIRST_INDEX,
        )
    )
    await _until("the snapshot to start", lambda: "snapshot start" in events)
    assert server.applied_index == FIRST_INDEX
    started = events.index("snapshot start")

    heartbeat = Message(
        type=MessageType.MsgHeartbeat, to=me, frm=leader, term=TERM, commit=FIRST_INDEX
    )
    server.ctx.inbox.on_peer_message(heartbeat)
    await _until("the heartbeat's answer", lambda: "send MsgHeartbeatResp" in events[started:])
    # A new entry arrives while the snapshot is open: m1 must neither persist nor apply it.
    server.ctx.inbox.on_peer_message(
        Message(
            type=MessageType.MsgApp,
            to=me,
            frm=leader,
            term=TERM,
            log_term=TERM,
            index=FIRST_INDEX,
            entries=[Entry(term=TERM, index=FIRST_INDEX + 1)],
            commit=FIRST_INDEX + 1,
        )
    )
    for _ in range(20):  # loop turns: whatever could run does
        await asyncio.sleep(0.005)
    during = events[started:]
    assert "persist" not in during, during
    assert "apply" not in during, during
    assert server.applied_index == FIRST_INDEX

    release.set()
    await _until("the entry to be applied", lambda: server.applied_index == FIRST_INDEX + 1)
    after = events[events.index("snapshot end") :]
    assert "persist" in after
    assert "apply" in after
