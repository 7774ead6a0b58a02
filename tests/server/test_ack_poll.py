"""An idle leader polls for the acks of the appends it just sent, for a bounded time.

On a 2-vCPU VM a loop sleeping in epoll reads a follower's ack 70-160 µs after it was
written, a polling loop ~35 µs after: the Ready loop keeps a callback pending (so the
event loop polls without sleeping) after a Ready that sent appends with entries, until
a peer message or other work arrives or `ACK_POLL_SECONDS` pass. In-process, never
started: the test drives the poll directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.raft.messages import Entry, Message, MessageType
from node.server import EtcdServer
from node.server import raft_loop as raft_loop_module
from node.server.raft_loop import RaftLoop
from tests.server.configs import fast_m1

POLL = 0.05  # seconds, long enough that "still polling" is certain on a busy machine
TIMEOUT = 10.0


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EtcdServer]:
    monkeypatch.setattr(raft_loop_module, "ACK_POLL_SECONDS", POLL)
    d = EtcdServer(fast_m1(tmp_path))
    try:
        yield d
    finally:
        d.loop.close()
        d.kv.close()
        d.wal.close()


def _msg(kind: MessageType, entries: int = 0) -> Message:
    es = [Entry(term=2, index=11 + i, data=b"x") for i in range(entries)]
    return Message(type=kind, to=2, frm=1, term=2, index=10, log_term=2, entries=es, commit=10)


def test_only_an_append_with_entries_is_waited_for() -> None:
    assert RaftLoop._sent_entries([_msg(MessageType.MsgHeartbeat), _msg(MessageType.MsgApp, 1)])
    assert not RaftLoop._sent_entries([_msg(MessageType.MsgApp)])  # commit-only: no ack due
    assert not RaftLoop._sent_entries([_msg(MessageType.MsgHeartbeat)])
    assert not RaftLoop._sent_entries([])  # a single member sends nothing


async def _turns_while_polling(loop: RaftLoop) -> int:
    """Count the event loop's turns while the poll runs (bounded by TIMEOUT)."""
    turns = 0
    deadline = time.monotonic() + TIMEOUT
    while loop._ack_polling:
        assert time.monotonic() < deadline, "the poll did not end"
        turns += 1
        await asyncio.sleep(0)
    return turns


async def test_the_poll_ends_when_its_time_is_up(server: EtcdServer) -> None:
    loop = server.loop
    started = time.monotonic()
    loop._poll_for_acks()
    assert loop._ack_polling
    turns = await _turns_while_polling(loop)
    assert time.monotonic() - started >= POLL * 0.9
    assert turns > 1  # the loop kept turning without a sleep


async def test_a_peer_message_ends_the_poll_at_once(server: EtcdServer) -> None:
    loop = server.loop
    loop._poll_for_acks()
    await asyncio.sleep(0)
    assert loop._ack_polling
    started = time.monotonic()
    server.ctx.inbox.messages.append(_msg(MessageType.MsgAppResp))
    await _turns_while_polling(loop)
    assert time.monotonic() - started < POLL


async def test_a_second_append_extends_the_poll(server: EtcdServer) -> None:
    loop = server.loop
    loop._poll_for_acks()
    first = loop._ack_poll_until
    await asyncio.sleep(POLL / 2)
    loop._poll_for_acks()
    assert loop._ack_poll_until > first
    await _turns_while_polling(loop)
    assert time.monotonic() >= first + POLL * 0.4  # ran past the first bound
