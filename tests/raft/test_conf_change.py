"""Membership changes in the core (ConfChange v1, as etcd-io/raft v3.4/3.5 applies them).

A small in-memory cluster drives `RawNode`s the way the server does: persist, send, apply
(calling `apply_conf_change` for every committed EntryConfChange), advance.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from node import raft

MT = raft.MessageType
CC = raft.ConfChange
CCT = raft.ConfChangeType
StateType = raft.StateType


class ListLogger:
    """A RaftLogger that keeps its lines, to assert on what the core reports."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def debug(self, msg: str) -> None:
        self.lines.append(("debug", msg))

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))

    def error(self, msg: str) -> None:
        self.lines.append(("error", msg))


@dataclass
class Member:
    node: raft.RawNode
    storage: raft.MemoryStorage
    logger: ListLogger
    applied: list[bytes] = field(default_factory=list)
    confs: list[raft.ConfState] = field(default_factory=list)  # after each applied change


class Net:
    """Members, their storage and a lossless network; `down` members neither send nor receive."""

    def __init__(self, peers: tuple[int, ...], learners: tuple[int, ...] = ()) -> None:
        self.peers = peers
        self.members: dict[int, Member] = {}
        self.down: set[int] = set()
        self.sent: list[raft.Message] = []
        # Called with (member, new ConfState) right after each apply_conf_change.
        self.on_conf_applied: Callable[[int, raft.ConfState], None] | None = None
        for i in peers + learners:
            self.add_member(i, learners=learners)

    def add_member(
        self,
        i: int,
        *,
        learners: tuple[int, ...] = (),
        conf_state: raft.ConfState | None = None,
        storage: raft.MemoryStorage | None = None,
    ) -> Member:
        """Start member `i`; a fresh one knows the bootstrap configuration (`peers`)."""
        st = storage if storage is not None else raft.MemoryStorage()
        log = ListLogger()
        cfg = raft.Config(
            id=i,
            peers=self.peers,
            learners=learners,
            conf_state=conf_state,
            rng=random.Random(i),
            logger=log,
        )
        m = Member(raft.RawNode(cfg, st), st, log)
        self.members[i] = m
        return m

    def node(self, i: int) -> raft.RawNode:
        return self.members[i].node

    def pump(self, rounds: int = 100) -> None:
        """Persist, send, apply and advance every member's Readys until nothing moves."""
        for _ in range(rounds):
            moved = False
            for i, m in list(self.members.items()):
                if i in self.down or not m.node.has_ready():
                    continue
                moved = True
                rd = m.node.ready()
                if rd.snapshot is not None:
                    m.storage.apply_snapshot(rd.snapshot)
                m.storage.append(rd.entries)
                if rd.hard_state is not None:
                    m.storage.set_hard_state(rd.hard_state)
                out = rd.messages + [x for x in rd.messages_after_persist if x.to != i]
                for e in rd.committed_entries:
                    if e.type == raft.EntryType.EntryConfChange:
                        m.confs.append(m.node.apply_conf_change(CC.decode(e.data)))
                        if self.on_conf_applied is not None:
                            self.on_conf_applied(i, m.confs[-1])
                    elif e.data:
                        m.applied.append(e.data)
                m.node.advance(rd)
                self.sent.extend(out)
                for x in out:
                    if x.to in self.members and x.to not in self.down:
                        self.members[x.to].node.step(x)
                        if x.type == MT.MsgSnap:
                            m.node.report_snapshot(x.to, failed=False)
            if not moved:
                return
        raise AssertionError("the cluster did not settle")

    def elect(self, i: int) -> None:
        self.node(i).campaign()
        self.pump()
        assert self.node(i).status().role == StateType.StateLeader

    def tick(self, i: int, n: int = 1) -> None:
        for _ in range(n):
            self.node(i).tick()

    def change(self, leader: int, cc: raft.ConfChange) -> None:
        self.node(leader).propose_conf_change(cc)
        self.pump()


def conf(node: raft.RawNode) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cs = node.status().conf_state
    return cs.voters, cs.learners


# -- adding, promoting, removing ----------------------------------------------------------------
def test_add_voter_through_the_log_and_the_new_member_catches_up() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.node(1).propose(b"before")
    net.pump()
    net.add_member(4)
    net.change(1, CC(CCT.ConfChangeAddNode, 4))
    for i in (1, 2, 3, 4):
        assert conf(net.node(i)) == ((1, 2, 3, 4), ()), i
    net.node(1).propose(b"after")
    net.pump()
    assert net.members[4].applied == [b"before", b"after"]
    assert net.node(4).status().commit == net.node(1).status().commit


def test_commit_needs_a_majority_of_the_grown_configuration() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.add_member(4)
    net.change(1, CC(CCT.ConfChangeAddNode, 4))
    net.down |= {3, 4}  # 2 of 4 is no majority
    commit = net.node(1).status().commit
    net.node(1).propose(b"x")
    net.pump()
    assert net.node(1).status().commit == commit


def test_a_new_peer_is_probed_from_the_leaders_last_index_and_counts_as_active() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.down.add(4)  # not started yet: its progress must stay where the change put it
    last = net.node(1).status().last_index
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 4))
    pr = net.node(1).raft.tracker.progress[4]
    assert (pr.match, pr.next, pr.recent_active, pr.is_learner) == (0, last + 2, True, True)
    assert net.node(1).status().progress[4][:2] == (0, last + 2)


def test_add_learner_receives_the_log_but_is_not_a_voter() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.add_member(4)
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 4))
    net.node(1).propose(b"x")
    net.pump()
    assert conf(net.node(1)) == ((1, 2, 3), (4,))
    assert net.members[4].applied == [b"x"]
    st4 = net.node(4).status()
    assert st4.is_learner
    assert not net.node(2).status().is_learner
    assert 4 in net.node(1).status().progress  # the leader's progress covers learners
    # Heartbeats reach the learner too.
    net.sent.clear()
    net.tick(1)
    net.pump()
    assert {m.to for m in net.sent if m.type == MT.MsgHeartbeat} == {2, 3, 4}


def test_add_node_of_a_learner_promotes_it() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.add_member(4)
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 4))
    match_before = net.node(1).raft.tracker.progress[4].match
    net.change(1, CC(CCT.ConfChangeAddNode, 4))
    assert conf(net.node(4)) == ((1, 2, 3, 4), ())
    assert not net.node(4).status().is_learner
    assert net.node(4).raft.promotable()
    assert net.node(1).raft.tracker.progress[4].match >= match_before  # progress carried over


def test_adding_a_voter_as_learner_is_refused_with_an_error_and_changes_nothing() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 3))
    for i in (1, 2, 3):
        assert conf(net.node(i)) == ((1, 2, 3), ())
    errors = [msg for lvl, msg in net.members[1].logger.lines if lvl == "error"]
    assert errors == [
        "1 refused conf change ConfChangeAddLearnerNode 3: cannot change 3 from voter to learner"
    ]


def test_remove_follower_it_stops_receiving_and_does_not_campaign() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.change(1, CC(CCT.ConfChangeRemoveNode, 3))
    assert conf(net.node(1)) == ((1, 2), ())
    assert conf(net.node(3)) == ((1, 2), ())
    assert 3 not in net.node(1).status().progress
    net.sent.clear()
    net.tick(1)
    assert all(m.to != 3 for m in net.sent)
    net.sent.clear()
    net.tick(3, 40)
    net.pump()
    assert not [m for m in net.sent if m.frm == 3]
    assert net.node(3).status().role == StateType.StateFollower


def test_removing_the_voter_that_held_back_the_commit_commits_the_pending_entries() -> None:
    """etcd-raft's TestCommitAfterRemoveNode, on a bare core."""
    st = raft.MemoryStorage()
    node = raft.RawNode(raft.Config(id=1, peers=(1, 2), rng=random.Random(1)), st)
    r = node.raft
    r.become_candidate()
    r.become_leader()

    def drain() -> list[raft.Entry]:
        rd = node.ready()
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        node.advance(rd)
        return rd.committed_entries

    drain()
    cc = CC(CCT.ConfChangeRemoveNode, 2)
    node.propose_conf_change(cc)
    assert drain() == []
    cc_index = r.raft_log.last_index()
    node.propose(b"hello")
    drain()
    node.step(raft.Message(type=MT.MsgAppResp, frm=2, to=1, term=r.term, index=cc_index))
    ents = drain()
    assert [e.type for e in ents] == [raft.EntryType.EntryNormal, raft.EntryType.EntryConfChange]
    assert node.apply_conf_change(cc) == raft.ConfState(voters=(1,))
    assert [e.data for e in drain()] == [b"hello"]


def test_remove_leader_hands_over_with_timeout_now_and_steps_down() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.sent.clear()
    net.change(1, CC(CCT.ConfChangeRemoveNode, 1))
    timeout_now = [m for m in net.sent if m.type == MT.MsgTimeoutNow]
    assert [(m.frm, m.term) for m in timeout_now] == [(1, 1)]
    successor = timeout_now[0].to
    old = net.node(1).status()
    assert old.role == StateType.StateFollower
    assert not net.node(1).raft.promotable()
    assert net.node(successor).status().role == StateType.StateLeader
    assert net.node(successor).status().term == 2
    assert conf(net.node(successor)) == ((2, 3), ())
    # The remaining two commit without the removed member.
    net.down.add(1)
    net.node(successor).propose(b"after")
    net.pump()
    assert net.members[successor].applied[-1] == b"after"


def test_removed_leader_keeps_leading_until_a_voter_caught_up_then_hands_over() -> None:
    """Stepping down before any voter holds the whole log could leave the others (who still
    count the removed leader) unable to elect anyone: it never campaigns and refuses a
    candidate whose log is behind its own."""
    net = Net((1, 2, 3))
    net.elect(1)
    r = net.node(1).raft
    net.down |= {2, 3}
    net.node(1).propose(b"uncommitted")  # in the leader's log only
    net.pump()
    net.sent.clear()
    conf_state = net.node(1).apply_conf_change(CC(CCT.ConfChangeRemoveNode, 1))
    assert conf_state == raft.ConfState(voters=(2, 3))
    assert r.state == StateType.StateLeader
    assert r.lead_transferee in (2, 3)
    with pytest.raises(raft.ProposalDropped):
        net.node(1).propose(b"refused")  # no longer a voter (and a transfer is under way)
    for _ in range(30):  # no CheckQuorum step-down while it hands over
        net.tick(1)
    net.pump()
    assert r.state == StateType.StateLeader
    net.down.clear()
    net.tick(1)
    net.pump()
    timeout_now = [m for m in net.sent if m.type == MT.MsgTimeoutNow]
    assert len(timeout_now) == 1
    assert net.node(1).status().role == StateType.StateFollower
    successor = net.node(timeout_now[0].to).status()
    assert successor.role == StateType.StateLeader
    assert net.members[timeout_now[0].to].applied[-1] == b"uncommitted"


def test_leader_transfer_to_a_removed_member_is_aborted() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.down.add(3)
    net.node(1).transfer_leader(3)
    r = net.node(1).raft
    assert r.lead_transferee == 3
    net.node(1).apply_conf_change(CC(CCT.ConfChangeRemoveNode, 3))
    assert r.lead_transferee == raft.NONE


def test_leader_transfer_to_a_learner_is_ignored() -> None:
    net = Net((1, 2, 3), learners=(4,))
    net.elect(1)
    net.node(1).transfer_leader(4)
    assert net.node(1).raft.lead_transferee == raft.NONE


# -- one change at a time -------------------------------------------------------------------------
def test_second_conf_change_before_the_first_is_applied_becomes_an_empty_entry() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    for i in (4, 5):
        net.add_member(i)
    leader = net.node(1)
    leader.propose_conf_change(CC(CCT.ConfChangeAddLearnerNode, 4))
    leader.propose_conf_change(CC(CCT.ConfChangeAddLearnerNode, 5))
    ents = leader.raft.raft_log.all_entries()[-2:]
    assert ents[0].type == raft.EntryType.EntryConfChange
    assert (ents[1].type, ents[1].data) == (raft.EntryType.EntryNormal, b"")
    assert any(
        "ignoring conf change ConfChangeAddLearnerNode 5" in msg
        for _, msg in net.members[1].logger.lines
    )
    net.pump()
    assert conf(leader) == ((1, 2, 3), (4,))
    # Once the first is applied, the next is accepted.
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 5))
    assert conf(leader) == ((1, 2, 3), (4, 5))


def test_applying_a_change_lifts_the_guard_before_advance() -> None:
    """The server may propose the next change right after applying one, before advance."""
    net = Net((1, 2, 3))
    net.elect(1)
    leader = net.node(1)
    proposed: list[int] = []

    def next_change(i: int, cs: raft.ConfState) -> None:
        if i == 1 and not proposed:
            proposed.append(leader.raft.raft_log.last_index() + 1)
            leader.propose_conf_change(CC(CCT.ConfChangeUpdateNode, 3))

    net.on_conf_applied = next_change
    net.change(1, CC(CCT.ConfChangeUpdateNode, 2))
    [index] = proposed
    [entry] = leader.raft.raft_log.slice(index, index + 1)
    assert entry.type == raft.EntryType.EntryConfChange
    assert CC.decode(entry.data).node_id == 3


def test_a_change_of_node_none_changes_nothing_but_ends_the_pending_change() -> None:
    net = Net((1, 2, 3))
    net.elect(1)
    net.change(1, CC(CCT.ConfChangeAddNode, raft.NONE))
    assert conf(net.node(1)) == ((1, 2, 3), ())
    net.add_member(4)
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 4))
    assert conf(net.node(1)) == ((1, 2, 3), (4,))


def test_a_new_leader_refuses_a_conf_change_until_its_log_is_applied() -> None:
    """become_leader sets the guard to its last index: an earlier leader's change there may
    still be unapplied."""
    st = raft.MemoryStorage()
    cc = CC(CCT.ConfChangeAddLearnerNode, 4)
    st.append([raft.Entry(term=1, index=1, type=raft.EntryType.EntryConfChange, data=cc.encode())])
    st.set_hard_state(raft.HardState(term=1))
    node = raft.RawNode(raft.Config(id=1, peers=(1,)), st)
    node.campaign()
    for _ in range(5):  # our own (pre-)votes come back once durable
        if node.raft.state == StateType.StateLeader:
            break
        rd = node.ready()
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        node.advance(rd)
    assert node.raft.state == StateType.StateLeader
    assert node.raft.pending_conf_index == 1
    node.propose_conf_change(CC(CCT.ConfChangeAddLearnerNode, 5))
    assert node.raft.raft_log.all_entries()[-1].type == raft.EntryType.EntryNormal


def test_a_member_with_a_committed_unapplied_conf_change_does_not_campaign() -> None:
    """etcd-raft's hup check: its configuration is older than one already committed."""
    st = raft.MemoryStorage()
    cc = CC(CCT.ConfChangeAddLearnerNode, 4)
    st.append([raft.Entry(term=1, index=1, type=raft.EntryType.EntryConfChange, data=cc.encode())])
    st.set_hard_state(raft.HardState(term=1, commit=1))
    log = ListLogger()
    node = raft.RawNode(raft.Config(id=1, peers=(1, 2, 3), logger=log), st)
    node.campaign()
    assert node.raft.state == StateType.StateFollower
    assert (
        "warning",
        "1 cannot campaign at term 1 since there are still 1 pending "
        "configuration changes to apply",
    ) in log.lines
    rd = node.ready()
    node.apply_conf_change(CC.decode(rd.committed_entries[0].data))
    node.advance(rd)
    node.campaign()
    assert node.status().role == StateType.StatePreCandidate


def test_conf_change_without_leader_is_dropped() -> None:
    net = Net((1, 2, 3))
    with pytest.raises(raft.ProposalDropped):
        net.node(1).propose_conf_change(CC(CCT.ConfChangeAddNode, 4))


# -- learners never count toward a quorum ---------------------------------------------------------
def test_learner_acks_do_not_commit() -> None:
    net = Net((1, 2, 3), learners=(4,))
    net.elect(1)
    net.down |= {2, 3}
    commit = net.node(1).status().commit
    net.node(1).propose(b"x")
    net.pump()
    assert net.node(4).status().last_index == net.node(1).status().last_index
    assert net.node(1).status().commit == commit


def test_learner_votes_do_not_count_and_candidates_do_not_ask_them() -> None:
    net = Net((1, 2, 3), learners=(4,))
    r = net.node(1).raft
    net.node(1).campaign()  # PreVote
    ready = net.node(1).ready()
    assert sorted(m.to for m in ready.messages if m.type == MT.MsgPreVote) == [2, 3]
    net.node(1).advance(ready)  # our own pre-vote
    net.node(1).step(raft.Message(type=MT.MsgPreVoteResp, frm=4, to=1, term=r.term + 1))
    assert r.state == StateType.StatePreCandidate  # 1 of 3 voters + a learner: no majority


def test_learner_liveness_does_not_satisfy_check_quorum() -> None:
    net = Net((1, 2, 3), learners=(4,))
    net.elect(1)
    net.down |= {2, 3}
    for _ in range(25):
        net.tick(1)
        net.pump()
    assert net.node(1).status().role == StateType.StateFollower


def test_learner_heartbeat_acks_do_not_confirm_a_read_index() -> None:
    net = Net((1, 2, 3), learners=(4,))
    net.elect(1)
    net.down |= {2, 3}
    leader = net.node(1)
    leader.read_index(b"r")
    net.pump()
    assert leader.raft.read_only.pending  # still waiting for a voter's ack
    net.down.clear()
    states: list[raft.ReadState] = []
    leader.raft.bcast_heartbeat()
    for _ in range(10):
        for i, m in net.members.items():
            if m.node.has_ready():
                rd = m.node.ready()
                if i == 1:
                    states += rd.read_states
                out = rd.messages + [x for x in rd.messages_after_persist if x.to != i]
                m.storage.append(rd.entries)
                m.node.advance(rd)
                for x in out:
                    net.node(x.to).step(x)
    assert [s.request_ctx for s in states] == [b"r"]


def test_learner_never_campaigns_and_ignores_timeout_now() -> None:
    net = Net((1, 2, 3), learners=(4,))
    learner = net.node(4)
    for _ in range(50):
        learner.tick()
    assert not learner.has_ready() or not learner.ready().messages
    learner.step(raft.Message(type=MT.MsgTimeoutNow, frm=1, to=4, term=1))
    assert learner.status().role == StateType.StateFollower
    assert learner.status().term == 1
    assert any("not promotable" in msg for _, msg in net.members[4].logger.lines)


def test_member_outside_the_configuration_does_not_campaign() -> None:
    net = Net((1, 2, 3))
    outsider = net.add_member(9, conf_state=raft.ConfState()).node
    for _ in range(50):
        outsider.tick()
    assert not outsider.has_ready()
    assert outsider.status().conf_state == raft.ConfState()


# -- configuration at start and in snapshots -------------------------------------------------------
def test_snapshot_carries_voters_and_learners() -> None:
    net = Net((1, 2, 3), learners=(4,))
    net.elect(1)
    for k in range(3):
        net.node(1).propose(b"v%d" % k)
    net.pump()
    leader = net.members[1]
    idx = leader.node.status().applied
    leader.storage.create_snapshot(idx, leader.node.status().conf_state, b"image")
    leader.storage.compact(idx)
    fresh = net.add_member(5, conf_state=raft.ConfState())
    net.change(1, CC(CCT.ConfChangeAddLearnerNode, 5))
    idx = leader.node.status().applied
    leader.storage.create_snapshot(idx, leader.node.status().conf_state, b"image2")
    leader.storage.compact(idx)
    net.tick(1)
    net.pump()
    assert fresh.storage.snapshot().data == b"image2"
    assert conf(fresh.node) == ((1, 2, 3), (4, 5))
    assert fresh.node.status().is_learner


def test_config_conf_state_wins_over_storage_and_peers() -> None:
    st = raft.MemoryStorage()
    meta = raft.SnapshotMetadata(index=5, term=1, conf_state=raft.ConfState(voters=(1, 2, 3)))
    st.apply_snapshot(raft.Snapshot(metadata=meta))
    newer = raft.ConfState(voters=(1, 2, 3, 4), learners=(5,))
    node = raft.RawNode(raft.Config(id=1, peers=(1, 2), conf_state=newer), st)
    assert node.status().conf_state == newer
    assert set(node.raft.tracker.progress) == {1, 2, 3, 4, 5}


def test_config_learners_start_beside_peers() -> None:
    node = raft.RawNode(raft.Config(id=4, peers=(1, 2, 3), learners=(4,)), raft.MemoryStorage())
    assert node.status().conf_state == raft.ConfState(voters=(1, 2, 3), learners=(4,))
    assert node.status().is_learner


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"peers": (1, 2), "learners": (3, 3)}, "duplicate learner ids"),
        ({"peers": (1, 2), "learners": (2,)}, "both peers and learners"),
        ({"conf_state": raft.ConfState(voters=(1, 2), learners=(2,))}, "both voter and learner"),
    ],
)
def test_config_rejects_overlapping_or_duplicate_members(
    kwargs: dict[str, object], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        raft.Config(id=1, **kwargs).validate()  # type: ignore[arg-type]


def test_removing_the_last_voter_is_refused() -> None:
    node = raft.RawNode(raft.Config(id=1, peers=(1,)), raft.MemoryStorage())
    assert node.apply_conf_change(CC(CCT.ConfChangeRemoveNode, 1)) == raft.ConfState(voters=(1,))
