"""The RawNode contract the driver relies on: Ready ordering, durability, errors, batching."""

from __future__ import annotations

import random

import pytest

from node import raft

MT = raft.MessageType


def new_node(i: int, peers: tuple[int, ...]) -> tuple[raft.RawNode, raft.MemoryStorage]:
    st = raft.MemoryStorage()
    return raft.RawNode(raft.Config(id=i, peers=peers, rng=random.Random(i)), st), st


def persist(st: raft.MemoryStorage, rd: raft.Ready) -> None:
    if rd.snapshot is not None:
        st.apply_snapshot(rd.snapshot)
    st.append(rd.entries)
    if rd.hard_state is not None:
        st.set_hard_state(rd.hard_state)


def run_single(node: raft.RawNode, st: raft.MemoryStorage, rounds: int = 10) -> list[bytes]:
    applied: list[bytes] = []
    for _ in range(rounds):
        if not node.has_ready():
            break
        rd = node.ready()
        persist(st, rd)
        applied.extend(e.data for e in rd.committed_entries if e.data)
        node.advance(rd)
    return applied


def test_single_member_elects_itself_and_commits_after_its_own_durable_ack() -> None:
    node, st = new_node(1, (1,))
    node.campaign()
    run_single(node, st)
    assert node.status().role == raft.StateType.StateLeader
    node.propose(b"x")
    rd = node.ready()
    assert [e.data for e in rd.entries] == [b"x"]
    assert rd.committed_entries == []  # not durable yet: the leader's own ack waits for advance
    assert [m.type for m in rd.messages_after_persist] == [MT.MsgAppResp]
    persist(st, rd)
    node.advance(rd)
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert rd.hard_state is not None
    assert rd.hard_state.commit == 2


def test_proposal_without_leader_fails_at_once() -> None:
    node, _ = new_node(1, (1, 2, 3))
    with pytest.raises(raft.ProposalDropped, match="raft proposal dropped: no leader"):
        node.propose(b"x")
    with pytest.raises(raft.ProposalDropped):
        node.read_index(b"ctx")
    st = node.status()
    assert st.proposals_dropped == 1
    assert st.read_index_failed == 1


def test_local_message_types_are_rejected() -> None:
    node, _ = new_node(1, (1, 2, 3))
    with pytest.raises(raft.StepLocalMsg):
        node.step(raft.Message(type=MT.MsgHup, frm=2))


def test_vote_grant_leaves_only_after_the_vote_is_persisted() -> None:
    node, _ = new_node(2, (1, 2, 3))
    node.step(raft.Message(type=MT.MsgVote, frm=1, to=2, term=5, index=0, log_term=0))
    rd = node.ready()
    assert rd.hard_state is not None
    assert (rd.hard_state.term, rd.hard_state.vote) == (5, 1)
    assert rd.must_sync
    assert rd.messages == []
    [resp] = rd.messages_after_persist
    assert (resp.type, resp.to, resp.reject) == (MT.MsgVoteResp, 1, False)


def elect_three() -> dict[int, tuple[raft.RawNode, raft.MemoryStorage]]:
    nodes = {i: new_node(i, (1, 2, 3)) for i in (1, 2, 3)}
    nodes[1][0].campaign()
    pump(nodes)
    return nodes


def pump(nodes: dict[int, tuple[raft.RawNode, raft.MemoryStorage]]) -> list[raft.Message]:
    sent: list[raft.Message] = []
    for _ in range(50):
        moved = False
        for i, (n, st) in nodes.items():
            if n.has_ready():
                moved = True
                rd = n.ready()
                persist(st, rd)
                out = rd.messages + [m for m in rd.messages_after_persist if m.to != i]
                sent.extend(out)
                n.advance(rd)
                for m in out:
                    if m.to in nodes:  # a missing member is partitioned away
                        nodes[m.to][0].step(m)
        if not moved:
            break
    return sent


def test_proposals_are_batched_into_one_append_per_follower() -> None:
    nodes = elect_three()
    leader = nodes[1][0]
    for k in range(100):
        leader.propose(b"v%d" % k)
    rd = leader.ready()
    apps = [m for m in rd.messages if m.type == MT.MsgApp]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(len(m.entries) == 100 for m in apps)


def test_a_leader_ticked_while_persisting_hands_out_its_heartbeats_alone() -> None:
    """take_messages: the requests a tick made while a Ready is persisted, nothing else."""
    nodes = elect_three()
    leader, st = nodes[1]
    leader.propose(b"x")
    rd = leader.ready()  # being persisted: not advanced yet
    assert rd.must_sync
    assert rd.entries
    leader.tick()  # heartbeat_tick=1: one interval is a heartbeat
    beats = leader.take_messages()
    assert sorted((m.type, m.to) for m in beats) == [(MT.MsgHeartbeat, 2), (MT.MsgHeartbeat, 3)]
    assert leader.take_messages() == []  # handed out once
    persist(st, rd)
    leader.advance(rd)
    later = leader.ready()  # the entry, its acks and the commit still come by Ready
    assert not any(m.type == MT.MsgHeartbeat for m in later.messages)
    assert later.entries == []
    assert later.committed_entries == []
    for m in rd.messages:  # the followers acknowledge: the entry commits as before
        nodes[m.to][0].step(m)
    leader.advance(later)
    pump(nodes)
    assert leader.status().commit == leader.status().applied == 2


def test_follower_forwards_proposals_and_everyone_applies() -> None:
    nodes = elect_three()
    nodes[2][0].propose(b"from-follower")
    pump(nodes)
    for n, _ in nodes.values():
        assert n.status().commit == n.status().applied == 2
    assert nodes[1][0].status().leader_changes == 1


def test_read_index_on_follower_returns_a_read_state() -> None:
    nodes = elect_three()
    nodes[3][0].read_index(b"r1")
    pump(nodes)
    # The ReadState was handed out in a Ready during pump: issue another and catch it.
    nodes[3][0].read_index(b"r2")
    states = []
    for _ in range(10):
        for i, (n, st) in nodes.items():
            if n.has_ready():
                rd = n.ready()
                persist(st, rd)
                if i == 3:
                    states.extend(rd.read_states)
                out = rd.messages + [m for m in rd.messages_after_persist if m.to != i]
                n.advance(rd)
                for m in out:
                    nodes[m.to][0].step(m)
    assert [(s.index, s.request_ctx) for s in states] == [(1, b"r2")]


def test_restart_from_storage_keeps_term_vote_log_and_skips_applied_entries() -> None:
    nodes = elect_three()
    for k in range(3):
        nodes[1][0].propose(b"v%d" % k)
    pump(nodes)
    st = nodes[2][1]
    before = nodes[2][0].status()
    again = raft.RawNode(raft.Config(id=2, peers=(1, 2, 3), applied=before.applied), st)
    after = again.status()
    assert (after.term, after.vote, after.commit, after.last_index) == (
        before.term,
        before.vote,
        before.commit,
        before.last_index,
    )
    assert not again.ready().committed_entries  # everything was already applied


def test_compacted_follower_gets_a_snapshot() -> None:
    nodes = elect_three()
    leader, lst = nodes[1]
    follower3 = nodes.pop(3)
    for k in range(5):
        leader.propose(b"v%d" % k)
    pump(nodes)
    applied = leader.status().applied
    lst.create_snapshot(applied, leader.status().conf_state, b"image")
    lst.compact(applied)
    nodes[3] = follower3
    for _ in range(3):
        leader.tick()
    sent = pump(nodes)
    assert any(m.type == MT.MsgSnap and m.to == 3 for m in sent)
    assert follower3[0].status().commit == applied
    assert follower3[1].snapshot().data == b"image"


def test_heartbeat_to_one_peer_comes_from_the_leader_only() -> None:
    """RawNode.heartbeat: the driver's "our stream to it connected" makes a leader
    heartbeat that peer at once; a follower does nothing; nothing else changes."""
    nodes = elect_three()
    leader, follower = nodes[1][0], nodes[2][0]
    before = leader.status()
    leader.heartbeat(3)
    rd = leader.ready()
    assert [(m.type, m.to) for m in rd.messages] == [(MT.MsgHeartbeat, 3)]
    assert rd.entries == []
    assert rd.hard_state is None
    leader.advance(rd)
    leader.heartbeat(1)  # itself, and an unknown id: nothing
    leader.heartbeat(9)
    follower.heartbeat(3)
    assert not leader.has_ready()
    assert not follower.has_ready()
    after = leader.status()
    assert (after.term, after.commit, after.lead) == (before.term, before.commit, before.lead)


def test_a_heartbeat_to_a_compacted_follower_gets_it_a_snapshot_without_a_tick() -> None:
    nodes = elect_three()
    leader, st = nodes[1]
    del nodes[3]  # member 3 is down while the log moves on and is compacted
    for k in range(10):
        leader.propose(b"v%d" % k)
    pump(nodes)
    applied = leader.status().applied
    st.create_snapshot(applied, raft.ConfState(voters=(1, 2, 3)), b"")
    st.compact(applied)
    leader.report_unreachable(3)  # its stream broke: probing
    leader.heartbeat(3)  # its stream is back
    rd = leader.ready()
    beat = next(m for m in rd.messages if m.to == 3)
    leader.advance(rd)
    leader.step(raft.Message(type=MT.MsgHeartbeatResp, to=1, frm=3, term=beat.term))
    sent = leader.ready().messages
    assert [(m.type, m.to) for m in sent] == [(MT.MsgSnap, 3)]


def test_ticks_until_campaign_counts_down_to_the_campaign() -> None:
    """The driver's tick advance sizes its fast-forward from it (server/tick_advance.py)."""
    node, _st = new_node(1, (1, 2, 3))
    left = node.ticks_until_campaign
    assert 10 <= left < 20  # a fresh draw from [election_tick, 2 * election_tick)
    for expected in range(left - 1, 0, -1):
        node.tick()
        assert node.ticks_until_campaign == expected
        assert node.status().role == raft.StateType.StateFollower
    node.tick()
    assert node.status().role == raft.StateType.StatePreCandidate
