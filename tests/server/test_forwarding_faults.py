"""Proposals around a failed leader: none is sent where it would be lost, none is lost
with it, none is applied twice.

Three behaviours (issue 17's faulted run, where each lost proposal costs its client a
request timeout):

* a follower whose stream to its leader is down (the leader was killed) holds new
  proposals instead of handing them to a transport that drops them; they go to the core
  once the stream is up again or a new leader is known, each once;
* a proposal that did leave is sent again, as a retry, once a new leader is known
  (the apply skips whichever copy comes second: tests/mvcc/test_dedup.py);
* a leader resumed after a pause steps the higher term its peers' messages bring before
  the proposals they forwarded meanwhile, so those go on to the new leader instead of
  being appended by the deposed one.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from node.mvcc import codec
from node.mvcc import requests as rq
from node.raft import (
    Config,
    Entry,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    StateType,
)
from node.server import proposals as proposals_module
from node.server.context import Leadership
from node.server.counters import ServerCounters
from node.server.proposals import Proposals
from node.server.raft_loop import step_forwarded_proposals_last
from tests.server.configs import fast_m1

MT = MessageType
LEADER = 0x2222


class Core:
    """Stands in for the RawNode: records what is proposed."""

    def __init__(self) -> None:
        self.proposed: list[bytes] = []

    def propose(self, data: bytes) -> None:
        self.proposed.append(data)


class Link:
    """Stands in for the transport: whether our stream to each peer is up."""

    def __init__(self) -> None:
        self.up: set[int] = set()

    def can_deliver(self, peer_id: int) -> bool:
        return peer_id in self.up


def _proposals(tmp_path: Path, lead: int) -> tuple[Proposals, Link, Leadership]:
    link, leadership = Link(), Leadership(lead=lead, role=StateType.StateFollower, term=2)
    inbox = SimpleNamespace(wake_loop=lambda: None)
    ctx: Any = SimpleNamespace(
        cfg=fast_m1(tmp_path),
        leadership=leadership,
        inbox=inbox,
        transport=link,
        counters=ServerCounters(),
    )
    return Proposals(ctx), link, leadership


async def _started(props: Proposals, key: bytes) -> asyncio.Task[Any]:
    before = props.pending
    task = asyncio.ensure_future(props.propose(rq.PutRequest(key=key, value=b"v")))
    for _ in range(100):
        if props.pending > before:
            break
        await asyncio.sleep(0)
    return task


def test_a_follower_holds_proposals_while_its_leader_is_unreachable(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int]:
        props, link, _ = _proposals(tmp_path, LEADER)
        core = Core()
        task = await _started(props, b"k")
        props.drain_into(core, 0)  # type: ignore[arg-type]
        while_down = len(core.proposed)
        props.drain_into(core, 0)  # type: ignore[arg-type]  # a tick's look: still down
        still_down = len(core.proposed)
        link.up.add(LEADER)  # the stream is back
        props.drain_into(core, 0)  # type: ignore[arg-type]
        props.drain_into(core, 0)  # type: ignore[arg-type]  # and nothing a second time
        task.cancel()
        return while_down, still_down, len(core.proposed)

    assert asyncio.run(main()) == (0, 0, 1)


def test_held_proposals_go_to_a_new_leader_once(tmp_path: Path) -> None:
    async def main() -> int:
        props, link, leadership = _proposals(tmp_path, LEADER)
        core = Core()
        tasks = [await _started(props, k) for k in (b"a", b"b")]
        props.drain_into(core, 0)  # type: ignore[arg-type]
        new_leader = 0x3333
        link.up.add(new_leader)
        leadership.lead = new_leader
        props.leader_known()
        props.drain_into(core, 0)  # type: ignore[arg-type]
        props.drain_into(core, 0)  # type: ignore[arg-type]
        for t in tasks:
            t.cancel()
        return len(core.proposed)

    assert asyncio.run(main()) == 2


def test_held_proposals_whose_clients_gave_up_are_not_proposed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proposals_module, "HELD_PRUNE_AT", 2)

    async def main() -> int:
        props, link, _ = _proposals(tmp_path, LEADER)
        core = Core()
        tasks = [await _started(props, k) for k in (b"a", b"b", b"c")]
        for t in tasks[:2]:  # their clients went away while the leader was unreachable
            t.cancel()
        await asyncio.gather(*tasks[:2], return_exceptions=True)
        props.drain_into(core, 0)  # type: ignore[arg-type]
        link.up.add(LEADER)
        props.drain_into(core, 0)  # type: ignore[arg-type]
        tasks[2].cancel()
        return len(core.proposed)

    assert asyncio.run(main()) == 1


def test_a_leader_hands_proposals_to_its_core_at_once(tmp_path: Path) -> None:
    async def main() -> int:
        props, _, leadership = _proposals(tmp_path, 0)
        leadership.lead = props._ctx.cfg.member_id  # this member leads: no link needed
        core = Core()
        task = await _started(props, b"k")
        props.drain_into(core, 0)  # type: ignore[arg-type]
        task.cancel()
        return len(core.proposed)

    assert asyncio.run(main()) == 1


def test_a_proposal_handed_over_is_sent_again_to_a_new_leader_as_a_retry(tmp_path: Path) -> None:
    """Forwarded to a leader that died: sent again once a new leader is known, wrapped as
    a retry naming the applied index of the first send; an answered one is not."""

    async def main() -> tuple[list[bytes], int]:
        props, link, leadership = _proposals(tmp_path, LEADER)
        link.up.add(LEADER)
        core = Core()
        waiting, answered = await _started(props, b"a"), await _started(props, b"b")
        props.drain_into(core, 41)  # type: ignore[arg-type]
        first = list(core.proposed)
        _, answered_id = sorted(props.waiters)
        props.waiters[answered_id].set_result("ok")
        await answered
        new_leader = 0x3333
        link.up.add(new_leader)
        leadership.lead = new_leader
        props.leader_known()
        props.drain_into(core, 57)  # type: ignore[arg-type]
        props.leader_known()  # and again at the next leader, still with since = 41
        props.drain_into(core, 60)  # type: ignore[arg-type]
        waiting.cancel()
        return core.proposed[len(first) :], props.sent_again

    again, counted = asyncio.run(main())
    assert counted == 2
    for retry in again:
        since, data = codec.split_retry(retry)
        assert since == 41
        assert codec.decode_request(data)[1] == rq.PutRequest(key=b"a", value=b"v")


def test_a_retry_the_core_drops_leaves_its_client_waiting(tmp_path: Path) -> None:
    """A retry dropped by the core (a leadership transfer) must not fail the client: its
    first copy may still be applied and answer it."""

    class Dropping(Core):
        def propose(self, data: bytes) -> None:
            if data[0] == codec.RETRY_FORMAT:
                raise ProposalDropped("leader transfer in progress")
            super().propose(data)

    async def main() -> bool:
        props, link, leadership = _proposals(tmp_path, LEADER)
        link.up.add(LEADER)
        core = Dropping()
        task = await _started(props, b"a")
        props.drain_into(core, 0)  # type: ignore[arg-type]
        link.up.add(0x3333)
        leadership.lead = 0x3333
        props.leader_known()
        props.drain_into(core, 0)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        still_waiting = not task.done()
        task.cancel()
        return still_waiting

    assert asyncio.run(main())


def _resumed_leader() -> RawNode:
    """Member 1 of (1, 2, 3), leader of term 2, as it was when it was paused."""
    node = RawNode(Config(id=1, peers=(1, 2, 3), rng=random.Random(1)), MemoryStorage())
    node.raft.become_follower(1, 0)
    node.raft.become_candidate()
    node.raft.become_leader()
    if node.has_ready():
        node.advance(node.ready())
    return node


def _what_arrived_while_paused() -> list[Message]:
    forwarded = Message(MT.MsgProp, to=1, frm=2, entries=[Entry(term=0, index=0, data=b"put")])
    new_term = Message(MT.MsgHeartbeat, to=1, frm=3, term=9)  # member 3 leads term 9
    return [forwarded, new_term]


def test_a_resumed_leader_forwards_proposals_that_arrived_with_a_higher_term() -> None:
    node = _resumed_leader()
    later = step_forwarded_proposals_last(node.step, _what_arrived_while_paused())
    assert node.raft.state == StateType.StateFollower
    assert node.raft.lead == 3
    for msg in later:
        node.step(msg)
    sent = node.ready().messages
    assert [(m.type, m.to) for m in sent if m.type == MT.MsgProp] == [(MT.MsgProp, 3)]
    assert all(e.data != b"put" for e in node.raft.raft_log.all_entries())


def test_in_arrival_order_the_deposed_leader_would_have_appended_it() -> None:
    """The contrast the reordering avoids: the proposal lands in the old term's tail."""
    node = _resumed_leader()
    for msg in _what_arrived_while_paused():
        node.step(msg)
    assert any(e.data == b"put" and e.term == 2 for e in node.raft.raft_log.all_entries())
