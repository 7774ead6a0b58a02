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


async def test_a_later_hold_waits_its_own_time_not_the_first_holds_timer(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    # One client: commit k is held, the append of k+1 replaces it, commit k+1 is held.
    # The timer armed for commit k must not send commit k+1 early.
    d, sent = server
    d.loop._send([_app(2, 10)])
    await asyncio.sleep(HOLD / 2)
    d.loop._send([_app(2, 10, entries=1)])
    held_at = time.monotonic()
    d.loop._send([_app(2, 11)])
    assert [m.commit for m in sent] == [10]  # the append, at once
    await _until("commit 11 to leave", lambda: len(sent) == 2)
    assert time.monotonic() - held_at >= HOLD * 0.9
    assert [(len(m.entries), m.commit) for m in sent] == [(1, 10), (0, 11)]


async def test_a_commit_only_append_replacing_a_held_one_keeps_its_start(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    # A follower waits at most one hold for a commit index, however often it moves.
    d, sent = server
    started = time.monotonic()
    d.loop._send([_app(2, 10)])
    since = d.loop._held_commits[2][1]
    await asyncio.sleep(HOLD / 2)
    d.loop._send([_app(2, 11)])
    assert sent == []
    assert d.loop._held_commits[2] == (_app(2, 11), since)  # the newer commit, same start
    await _until("commit 11 to leave", lambda: sent)
    assert time.monotonic() - started >= HOLD * 0.9
    assert [(m.to, m.commit) for m in sent] == [(2, 11)]


async def test_each_follower_leaves_at_the_end_of_its_own_hold(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    d, sent = server
    d.loop._send([_app(2, 10)])
    await asyncio.sleep(HOLD / 2)
    d.loop._send([_app(3, 10)])
    await _until("m2's commit to leave", lambda: sent)
    assert [m.to for m in sent] == [2]  # m3's hold has not ended yet
    await _until("m3's commit to leave", lambda: len(sent) == 2)
    assert [m.to for m in sent] == [2, 3]
    assert d.loop._held_commits == {}


async def test_no_timer_is_left_when_every_hold_was_replaced(
    server: tuple[EtcdServer, list[Message]],
) -> None:
    # At one client each commit is replaced by the next write's append well within the
    # hold: the timer would only wake the loop for nothing.
    d, sent = server
    d.loop._send([_app(2, 10), _app(3, 10)])
    d.loop._send([_app(2, 10, entries=1)])
    assert d.loop._held_timer is not None  # m3's commit is still held
    d.loop._send([_app(3, 10, entries=1)])
    assert d.loop._held_timer is None
    assert d.loop._held_commits == {}
    await asyncio.sleep(2 * HOLD)
    assert [(m.to, len(m.entries)) for m in sent] == [(2, 1), (3, 1)]
