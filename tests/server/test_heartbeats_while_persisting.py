"""A leader's heartbeats leave on time while its WAL save waits in the fsync thread.

The Ready loop feeds ticks to the Raft core between Readys. A save in the fsync thread
(a slow disk) used to hold every tick until it returned, so a 0.1-0.2 s fdatasync on a
shared disk delayed the leader's heartbeats past two intervals: a heartbeat send
failure (issue 17) and a follower's election timer running down meanwhile. Now a
leader's ticks reach the core while the save runs and its heartbeats leave at once.

One member (m1) runs its real server and Raft core in-process, with 10 ms heartbeats;
the test plays m2 and m3 (they grant votes, acknowledge appends and answer
heartbeats), holds one of m1's saves open in the fsync thread, and counts the heartbeats
m1 sends meanwhile. Heartbeats still count as etcd counts them: when they leave.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from node.mvcc import requests as rq
from node.raft.messages import Entry, HardState, Message, MessageType
from node.server import EtcdServer
from node.server import bootstrap as bootstrap_module
from node.server import server as server_module
from node.transport import Transport
from node.wal import WAL
from tests.server.configs import fast_m1

MT = MessageType
TIMEOUT = 10.0  # seconds: bound on every wait
BEATS = 3  # heartbeats to each follower while the save is held


class Followers:
    """Plays m2 and m3: grants every vote, acknowledges every append, answers heartbeats."""

    def __init__(self) -> None:
        self.server: EtcdServer | None = None
        self.sent: list[Message] = []  # everything m1 sent, in order

    def receive(self, msg: Message) -> None:
        self.sent.append(msg)
        answer = self._answer(msg)
        if answer is not None and self.server is not None:
            inbox = self.server.ctx.inbox
            asyncio.get_running_loop().call_soon(inbox.on_peer_message, answer)

    @staticmethod
    def _answer(msg: Message) -> Message | None:
        reply = {
            MT.MsgPreVote: MT.MsgPreVoteResp,
            MT.MsgVote: MT.MsgVoteResp,
            MT.MsgApp: MT.MsgAppResp,
            MT.MsgHeartbeat: MT.MsgHeartbeatResp,
        }.get(msg.type)
        if reply is None:
            return None
        index = msg.entries[-1].index if msg.entries else msg.index
        return Message(
            type=reply, to=msg.frm, frm=msg.to, term=msg.term, index=index, context=msg.context
        )


@dataclass
class HeldSave:
    """The test's hold on m1's next save with entries, in the fsync thread."""

    next: threading.Event = field(default_factory=threading.Event)  # set: hold the next one
    holding: threading.Event = field(default_factory=threading.Event)  # the thread waits
    release: threading.Event = field(default_factory=threading.Event)


Leader = tuple[EtcdServer, Followers, HeldSave]


@pytest.fixture
async def leader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Leader]:
    followers, held = Followers(), HeldSave()

    class HeldWAL(WAL):
        def save(
            self, hard_state: HardState | None, entries: Sequence[Entry], must_sync: bool
        ) -> None:
            if entries and held.next.is_set():
                held.next.clear()
                held.holding.set()
                held.release.wait(3 * TIMEOUT)  # the fixture releases it at the end
            super().save(hard_state, entries, must_sync)

    class NoSockets(Transport):
        async def start(self) -> None:  # the test is the network
            return None

        async def stop(self) -> None:
            await self.client.close()

        def can_deliver(self, peer_id: int) -> bool:
            return True

        def send(self, messages: Iterable[Message]) -> None:
            for msg in messages:
                followers.receive(msg)

    monkeypatch.setattr(bootstrap_module, "WAL", HeldWAL)
    monkeypatch.setattr(server_module, "Transport", NoSockets)
    server = EtcdServer(fast_m1(tmp_path))
    followers.server = server
    monkeypatch.setattr(server.loop, "_fsync_on_loop", lambda: False)  # a slow disk
    await server.start()
    try:
        await _until("m1 to lead", lambda: server.is_leader)
        yield server, followers, held
    finally:
        held.release.set()
        await server.stop()


async def _until(what: str, done: Callable[[], object]) -> None:
    for _ in range(int(TIMEOUT / 0.005)):
        if done():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _beats(messages: list[Message], to: int) -> int:
    return sum(1 for m in messages if m.type == MT.MsgHeartbeat and m.to == to)


async def _put_held(server: EtcdServer, held: HeldSave) -> asyncio.Task[object]:
    """A put whose save m1 holds in the fsync thread (until `held.release`)."""
    held.next.set()
    put = asyncio.create_task(server.propose(rq.PutRequest(key=b"k", value=b"v")))
    await _until("the save to be held", held.holding.is_set)
    return put


async def test_a_leader_sends_heartbeats_while_its_save_waits_in_the_fsync_thread(
    leader: Leader,
) -> None:
    server, followers, held = leader
    put = await _put_held(server, held)
    started = len(followers.sent)
    await _until(
        f"{BEATS} heartbeats to each follower during the save",
        lambda: all(_beats(followers.sent[started:], p) >= BEATS for p in server.peer_ids),
    )
    assert not put.done()  # the save is still held: nothing is answered before it
    assert server.is_leader
    assert server.ctx.counters.heartbeat_send_failures == 0


async def test_the_write_is_answered_once_its_save_returns(leader: Leader) -> None:
    server, followers, held = leader
    put = await _put_held(server, held)
    started = len(followers.sent)
    await _until(
        "a heartbeat to each follower during the save",
        lambda: all(_beats(followers.sent[started:], p) >= 1 for p in server.peer_ids),
    )
    held.release.set()
    resp = await asyncio.wait_for(put, TIMEOUT)
    assert isinstance(resp, rq.PutResponse)
    assert server.is_leader


async def test_a_save_stuck_past_half_an_election_timeout_stops_the_heartbeats(
    leader: Leader,
) -> None:
    """A hung disk must not hold the cluster: the followers get to elect another leader."""
    server, followers, held = leader
    limit = server.loop._persist_tick_limit
    assert 0 < limit < server.ctx.cfg.election_ticks
    put = await _put_held(server, held)
    started = len(followers.sent)
    await _until("ticks to wait in the inbox", lambda: server.ctx.inbox.ticks >= 2)
    for p in server.peer_ids:
        assert 1 <= _beats(followers.sent[started:], p) <= limit
    assert not put.done()
    held.release.set()
    await asyncio.wait_for(put, TIMEOUT)


async def test_a_leader_that_steps_down_during_the_save_stops_ticking_early(
    leader: Leader,
) -> None:
    """A higher term stepped in while the save is held: the core follows, so its ticks
    (which could start a campaign whose term and vote are not durable) wait for the Ready."""
    server, followers, held = leader
    put = await _put_held(server, held)
    await _until("a heartbeat during the save", lambda: server.loop._ticks_this_save >= 1)
    peer = server.peer_ids[0]
    term = server.ctx.opened.node.status().term + 1
    server.ctx.inbox.on_peer_message(
        Message(type=MT.MsgHeartbeat, to=server.member_id, frm=peer, term=term)
    )
    assert not server.ctx.opened.node.leads
    ticked = server.loop._ticks_this_save
    sent = len(followers.sent)
    await _until("ticks to wait in the inbox", lambda: server.ctx.inbox.ticks >= 2)
    assert server.loop._ticks_this_save == ticked
    assert not [m for m in followers.sent[sent:] if m.type == MT.MsgHeartbeat]
    held.release.set()
    await asyncio.wait_for(asyncio.gather(put, return_exceptions=True), TIMEOUT)
