"""The leader's commit-only appends wait a moment for the next append, which carries the
same commit index, instead of waking every follower twice per write.

After each commit the Raft core sends every follower an empty MsgApp that only moves its
commit index. At one client that is a second wake-up, WAL write, apply and answer per
follower per write, on two shared cores. The Ready loop holds such a message for at most
`COMMIT_HOLD_SECONDS`: an append to the same follower meanwhile (it always carries the
leader's commit index) replaces it; otherwise it leaves when the hold ends. Appends with
entries, heartbeats and everything else leave at once. In-process, never started: the
test records what reaches the transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from node.raft.messages import Entry, Message, MessageType
from node.server import EtcdServer
from node.server import raft_loop as raft_loop_module
from tests.server.configs import fast_m1

HOLD = 0.05  # seconds, long enough that "not yet" is certain on a busy machine
TIMEOUT = 10.0


@pytest.fixture
async def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[EtcdServer, list[Message]]]:
    monkeypatch.setattr(raft_loop_module, "COMMIT_HOLD_SECONDS", HOLD)
    d = EtcdServer(fast_m1(tmp_path))
    sent: list[Message] = []

    def record(messages: Iterable[Message]) -> None:
        sent.extend(messages)

    monkeypatch.setattr(d.transport, "send", record)
    try:
        yield d, sent
    finally:
        d.loop.close()
        d.kv.close()
        d.wal.close()


def _app(to: int, commit: int, entries: int = 0) -> Message:
    es = [Entry(term=2, index=commit + i + 1, data=b"x") for i in range(entries)]
    return Message(
        type=MessageType.MsgApp, to=to, frm=1, term=2, index=commit, log_term=2,
        entries=es, commit=commit,
    )  # fmt: skip


async def _until(what: str, done: Callable[[], object]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, f"not within {TIMEOUT}s: {what}"
        await asyncio.sleep(0.005)


async def test_a_commit_only_append_leaves_when_the_hold_ends(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    d, sent = server
    started = time.monotonic()
    d.loop._send([_app(2, 10)])
    assert sent == []  # held
    await _until("the held append to leave", lambda: sent)
    assert time.monotonic() - started >= HOLD * 0.9
    assert [(m.to, m.commit) for m in sent] == [(2, 10)]


async def test_an_append_to_the_same_follower_replaces_the_held_one(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    d, sent = server
    d.loop._send([_app(2, 10), _app(3, 10)])
    d.loop._send([_app(2, 10, entries=1)])  # carries commit 10 too
    assert [(m.to, len(m.entries)) for m in sent] == [(2, 1)]  # at once
    await _until("the append to m3 to leave", lambda: len(sent) == 2)
    await asyncio.sleep(2 * HOLD)
    assert [(m.to, len(m.entries), m.commit) for m in sent] == [(2, 1, 10), (3, 0, 10)]


async def test_appends_with_entries_and_heartbeats_leave_at_once(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    d, sent = server
    beat = Message(type=MessageType.MsgHeartbeat, to=3, frm=1, term=2, commit=10)
    d.loop._send([_app(2, 10, entries=2), beat])
    assert [m.type for m in sent] == [MessageType.MsgApp, MessageType.MsgHeartbeat]
    await asyncio.sleep(2 * HOLD)
    assert len(sent) == 2  # nothing was held
