"""A simulated cluster: N `RawNode`s, durable storage per member, a seeded `Network`.

Each member follows the real driver's loop (persist -> send -> apply -> advance). What a
member "persisted" is exactly its `MemoryStorage` (written only in the persist step), so
`crash` loses the unstable log, unsent messages and volatile state, and `restart` rebuilds
the member from storage alone. Safety invariants are checked after every Ready.

Membership changes go through the log only, in etcd's order: a change is proposed, and a new
member is started (empty storage, knowing the bootstrap configuration) once the change adding
it is applied; a removed member is stopped a few ticks after its removal was applied (etcd's
removed member shuts down). Member ids are never reused.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import NoReturn

from node import raft
from tests.sim import invariants as inv
from tests.sim.network import Network

MT = raft.MessageType
CCT = raft.ConfChangeType
RETIRE_AFTER = 3  # ticks at least between a removal being applied and the member stopping


class InvariantViolation(AssertionError):
    """A safety property broke; the message names the property and the members."""


@dataclass(slots=True)
class Member:
    """One simulated member: durable storage plus (while running) its RawNode and state machine."""

    id: int
    storage: raft.MemoryStorage = field(default_factory=raft.MemoryStorage)
    node: raft.RawNode | None = None
    incarnation: int = 0
    sm_applied: int = 0  # index of the last entry applied to the state machine
    sm_hash: int = 0  # hash chain over everything applied (the "state machine")
    log_hashes: dict[int, int] = field(default_factory=dict)  # persisted index -> prefix hash
    # The configuration at sm_applied, once a change or a snapshot set it (None: bootstrap).
    conf: raft.ConfState | None = None
    # Voter sets this member left since its last persisted HardState: a commit index in the
    # next HardState may have been counted in one of them (a message stepped mid-Ready).
    left_voters: list[tuple[int, ...]] = field(default_factory=list)
    started: bool = False  # a member added later starts only once its addition is applied
    retired: bool = False  # removed from the cluster and stopped for good


@dataclass(slots=True)
class SimConfig:
    size: int
    seed: int
    pre_vote: bool = True
    check_quorum: bool = True
    election_tick: int = 10
    compact_threshold: int = 0  # compact when this many applied entries sit in storage (0: never)
    crash_mid_ready: float = 0.0  # probability a crash lands between sending and persisting
    # Probability that a member steps the messages due to it while its Ready is being
    # persisted, i.e. between ready() and advance(), as the real driver does during fsync.
    step_during_persist: float = 0.0
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    # The state machine (applied index, hash, configuration) survives crashes, as the server's
    # backend does: a restart passes Config.applied and Config.conf_state instead of
    # re-applying from the snapshot.
    durable_sm: bool = False
    membership: float = 0.0  # probability per tick of proposing a membership change
    max_members: int = 7  # started, not retired members (voters + learners) at most


class Cluster:
    """Runs members in lock step: tick everyone, then deliver until the network is quiet."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.net = Network(random.Random(cfg.seed * 7919 + 1))
        self.ids = list(range(1, cfg.size + 1))
        self.bootstrap = tuple(self.ids)
        self.next_id = cfg.size + 1
        # Removed member -> (time its removal was first applied, the voters after it, the
        # members that applied it).
        self.removals: dict[int, tuple[int, tuple[int, ...], set[int]]] = {}
        self.members = {i: Member(i) for i in self.ids}
        self.history = inv.History()
        self.snap_registry: dict[bytes, int] = {}
        self.pending: dict[bytes, int] = {}  # client values proposed but not yet applied
        self.applied_values: set[bytes] = set()
        self.log: list[str] = []  # a short event trail for failure messages
        # What the run exercised (membership events), for the coverage test.
        self.stats: Counter[str] = Counter()
        self.time = 0
        for i in self.ids:
            self.start(i)

    # -- lifecycle -------------------------------------------------------------------------
    def new_member(self) -> int:
        """Reserve a fresh id (never reused) for a member a change will add."""
        i = self.next_id
        self.next_id += 1
        self.members[i] = Member(i)
        self.ids.append(i)
        return i

    def start(self, i: int) -> None:
        m = self.members[i]
        m.incarnation += 1
        m.started = True
        st = m.storage
        snap = st.snapshot()
        if self.cfg.durable_sm and m.incarnation > 1:
            pass  # the state machine, and its configuration, survived the crash
        elif snap.is_empty():
            m.sm_applied, m.sm_hash, m.conf = 0, 0, None
        else:
            m.sm_applied = snap.metadata.index
            m.sm_hash = int(snap.data.split(b":")[1])
            m.conf = snap.metadata.conf_state
        # Rebuild the persisted-log hashes from what storage holds (after the compaction point).
        base = st.first_index() - 1
        prev = 0 if base == 0 else self._prefix_at(base, st.term(base))
        m.log_hashes = {base: prev}
        if st.last_index() > base:
            for e in st.entries(base + 1, st.last_index() + 1, 1 << 62):
                prev = inv.chain(prev, e)
                m.log_hashes[e.index] = prev
        c = self.cfg
        m.node = raft.RawNode(
            raft.Config(
                id=i,
                peers=self.bootstrap,
                conf_state=m.conf if self.cfg.durable_sm else None,
                election_tick=c.election_tick,
                heartbeat_tick=1,
                rng=random.Random(c.seed * 1_000_003 + i * 101 + m.incarnation),
                check_quorum=c.check_quorum,
                pre_vote=c.pre_vote,
                applied=m.sm_applied,
                max_size_per_msg=c.max_size_per_msg,
                max_inflight_msgs=c.max_inflight_msgs,
            ),
            m.storage,
        )

    def _prefix_at(self, index: int, term: int) -> int:
        h = self.history.prefixes.get((index, term))
        if h is None:
            self.fail(f"({index}, term {term}) matches no persisted log")
        return h

    def crash(self, i: int) -> None:
        """Stop member `i`, losing everything that was not persisted."""
        self.members[i].node = None
        self.net.drop_to(i)
        self.note(f"crash {i}")

    def restart(self, i: int) -> None:
        m = self.members[i]
        if m.node is None and m.started and not m.retired:
            self.start(i)
            self.note(f"restart {i}")

    def retire(self, i: int) -> None:
        """A removed member stops for good (etcd: it shuts down once it learns it was removed)."""
        m = self.members[i]
        if m.retired:
            return
        if m.node is not None:
            self.crash(i)
        m.retired = True
        self.note(f"retire {i}")

    def retire_removed(self) -> None:
        """Stop removed members once a majority of the new configuration applied the removal.

        etcd's removed member stops itself (after a delay) or when a peer that applied the
        removal rejects it. Stopping it before the new configuration knows the removal is
        committed could leave members that still count it for a quorum stuck for good.
        """
        for i, (t, voters, appliers) in self.removals.items():
            knows = sum(1 for v in voters if v in appliers)
            if self.time - t >= RETIRE_AFTER and knows >= len(voters) // 2 + 1:
                self.retire(i)

    def alive(self) -> list[int]:
        return [i for i in self.ids if self.members[i].node is not None]

    def note(self, what: str) -> None:
        self.log.append(f"t={self.time} {what}")
        if len(self.log) > 40:
            del self.log[:10]

    def fail(self, msg: str) -> NoReturn:
        raise InvariantViolation(
            f"{msg}\n{self.describe()}\nrecent events:\n  " + "\n  ".join(self.log)
        )

    # -- the driver loop -------------------------------------------------------------------
    def process_ready(self, i: int) -> bool:
        m = self.members[i]
        node = m.node
        if node is None or not node.has_ready():
            return False
        rd = node.ready()
        for msg in rd.messages:
            self.transmit(msg)
        if self.cfg.crash_mid_ready and self.rng.random() < self.cfg.crash_mid_ready:
            # Requests may leave before the fsync; nothing that promises durability did.
            self.crash(i)
            return True
        if self.cfg.step_during_persist and self.rng.random() < self.cfg.step_during_persist:
            for msg in self.net.due_to(i):
                self._deliver_one(msg)
        self.persist(m, rd)
        for msg in rd.messages_after_persist:
            if msg.to != i:
                self.transmit(msg)
        self.apply(m, rd)
        node.advance(rd)
        self.check_member(m)
        return True

    def persist(self, m: Member, rd: raft.Ready) -> None:
        st = m.storage
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
            meta = rd.snapshot.metadata
            m.log_hashes = {meta.index: self._prefix_at(meta.index, meta.term)}
            chained = int(rd.snapshot.data.split(b":")[1])
            m.sm_applied, m.sm_hash = meta.index, chained
            m.conf = meta.conf_state
        if rd.entries:
            first = rd.entries[0].index
            prev = m.log_hashes.get(first - 1)
            if prev is None:
                self.fail(f"member {m.id} persisted entries from {first} after a gap")
            errs = inv.check_log_matching(self.history, m.id, rd.entries, prev)
            if errs:
                self.fail(errs[0])
            h = prev
            for e in rd.entries:
                h = inv.chain(h, e)
                m.log_hashes[e.index] = h
            st.append(rd.entries)
        if rd.hard_state is not None:
            node = m.node
            assert node is not None
            self.check_commit_quorum(m, rd.hard_state, st.hard_state(), rd.soft_state is None)
            st.set_hard_state(rd.hard_state)
            c = rd.hard_state.commit
            if c > self.history.committed[0]:
                t = node.raft.raft_log.zero_term_on_err(c)
                self.history.committed = (c, t, rd.hard_state.term)

    def check_commit_quorum(
        self, m: Member, hs: raft.HardState, prev: raft.HardState, same_role: bool
    ) -> None:
        """A commit index a leader advanced during its own leadership (same term and role
        since its last Ready) must be durably held by a majority of the voters of a
        configuration it was in meanwhile: its current one, or one it left since then."""
        node = m.node
        assert node is not None
        left, m.left_voters = m.left_voters, []
        r = node.raft
        c = hs.commit
        if r.state != raft.StateType.StateLeader or not same_role or hs.term != prev.term:
            return
        if c <= prev.commit:
            return
        want = self.history.prefixes.get((c, r.raft_log.term(c)))
        holders = set()
        for i, other in self.members.items():
            if c < other.storage.first_index() or other.log_hashes.get(c) == want:
                holders.add(i)
        errs: list[str] = []
        for voters in [r.tracker.voters, *left]:
            errs = inv.check_commit_quorum(m.id, c, voters, holders)
            if not errs:
                return
        self.fail(errs[0])

    def apply(self, m: Member, rd: raft.Ready) -> None:
        node = m.node
        assert node is not None
        added = False
        for e in rd.committed_entries:
            if e.index != m.sm_applied + 1:
                self.fail(f"member {m.id} applied {e.index} after {m.sm_applied}")
            m.sm_hash = inv.chain(m.sm_hash, e)
            m.sm_applied = e.index
            errs = inv.check_state_machine_safety(self.history, m.id, e, m.sm_hash)
            if errs:
                self.fail(errs[0])
            if e.type == raft.EntryType.EntryConfChange:
                added |= self.apply_conf_change(m, node, e)
            elif e.data:
                self.applied_values.add(e.data)
                self.pending.pop(e.data, None)
        th = self.cfg.compact_threshold
        st = m.storage
        snap_index = st.first_index() - 1
        due = th and m.sm_applied - st.first_index() >= th
        # A new member must be sent a snapshot that names it (it refuses any other): the
        # server snapshots after an addition, as etcd's sends a fresh one at its applied index.
        if (due or (th and added)) and snap_index < m.sm_applied <= st.last_index():
            data = b"%d:%d" % (m.sm_applied, m.sm_hash)
            st.create_snapshot(m.sm_applied, node.status().conf_state, data)
            keep = self.rng.randint(0, 3)
            if due and m.sm_applied - keep >= st.first_index():
                st.compact(m.sm_applied - keep)

    def refused(self, cc: raft.ConfChange, before: raft.ConfState, index: int) -> bool:
        """The server's validation, as etcd's: adding a present voter ("member already
        exists") or a removed id ("membership: ID removed"; a delayed proposal could revive
        a stopped member). Deterministic: `history.confs` holds every change before `index`
        (all were applied before this one, by someone)."""
        if cc.type == CCT.ConfChangeAddNode and cc.node_id in before.voters:
            return True
        if cc.type not in (CCT.ConfChangeAddNode, CCT.ConfChangeAddLearnerNode):
            return False
        if cc.node_id in before.voters + before.learners:
            return False
        return any(
            cc.node_id in cs.voters + cs.learners
            for i, cs in self.history.confs.items()
            if i < index
        )

    def apply_conf_change(self, m: Member, node: raft.RawNode, e: raft.Entry) -> bool:
        """The server's apply step for a conf change; True when it added a member."""
        cc = raft.ConfChange.decode(e.data)
        before = node.status().conf_state
        if self.refused(cc, before, e.index):
            # The server refuses it and applies an empty change instead, which still ends
            # the pending change.
            cc = raft.ConfChange(cc.type, raft.NONE, cc.id)
        was_leader = node.raft.state == raft.StateType.StateLeader
        m.conf = node.apply_conf_change(cc)
        if e.index not in self.history.confs:
            self.stats[f"applied {cc.type.name}"] += 1
            if cc.type == CCT.ConfChangeAddNode and cc.node_id in before.learners:
                self.stats["learner promoted"] += 1
        if was_leader and cc.node_id == m.id and cc.type == CCT.ConfChangeRemoveNode:
            self.stats["leader removed itself"] += 1
        if m.conf.voters != before.voters:
            m.left_voters.append(before.voters)
        errs = inv.check_config_agreement(self.history, m.id, e.index, m.conf)
        if errs:
            self.fail(errs[0])
        target = cc.node_id
        if target == raft.NONE:
            return False
        if cc.type == CCT.ConfChangeRemoveNode and target not in m.conf.voters + m.conf.learners:
            self.removals.setdefault(target, (self.time, m.conf.voters, set()))[2].add(m.id)
        if cc.type in (CCT.ConfChangeAddNode, CCT.ConfChangeAddLearnerNode):
            new = self.members.get(target)
            if new is not None and not new.started and not new.retired:
                self.start(target)
                self.note(f"start {target} (added at {e.index})")
            return True
        return False

    def check_member(self, m: Member) -> None:
        node = m.node
        if node is None:
            return
        r = node.raft
        if r.state == raft.StateType.StateLeader:
            # Only a voter leads; a leader that applied its own removal leads on only while
            # it hands over to a voter.
            if r.is_learner() or (not r.promotable() and r.lead_transferee == raft.NONE):
                cs = r.tracker.conf_state()
                self.fail(f"member {m.id} leads term {r.term} but is no voter of {cs}")
            errs = inv.check_election_safety(self.history, r.term, m.id)
            idx = self.history.committed[0]
            log = r.raft_log
            term_at = None if idx < log.first_index() - 1 else log.zero_term_on_err(idx)
            errs += inv.check_leader_completeness(
                self.history, m.id, r.term, term_at, log.first_index()
            )
            if errs:
                self.fail(errs[0])

    def transmit(self, msg: raft.Message) -> None:
        if msg.type == MT.MsgTimeoutNow:
            sender = self.members[msg.frm].node
            if sender is not None and not sender.raft.promotable():
                self.stats["removed leader handed over"] += 1
        elif msg.type == MT.MsgSnap and msg.to not in self.bootstrap:
            self.stats["snapshot sent to an added member"] += 1
        ok = self.net.send(msg)
        if not ok:
            sender = self.members[msg.frm].node
            if sender is not None and msg.type == MT.MsgSnap:
                sender.report_snapshot(msg.to, failed=True)
            elif sender is not None and msg.type == MT.MsgApp and self.net.blocked(msg.frm, msg.to):
                sender.report_unreachable(msg.to)

    def deliver(self) -> int:
        msgs = self.net.due()
        lost = self.net.lost_snapshots
        while lost:
            snap_msg = lost.pop()
            sender = self.members[snap_msg.frm].node
            if sender is not None:
                sender.report_snapshot(snap_msg.to, failed=True)
        for msg in msgs:
            self._deliver_one(msg)
        return len(msgs)

    def _deliver_one(self, msg: raft.Message) -> None:
        to = self.members.get(msg.to)
        target = None if to is None else to.node
        sender = self.members[msg.frm].node
        if target is None:
            if msg.type == MT.MsgSnap and sender is not None:
                sender.report_snapshot(msg.to, failed=True)
            return
        target.step(msg)
        if msg.type == MT.MsgSnap and sender is not None:
            sender.report_snapshot(msg.to, failed=False)

    def settle(self, max_rounds: int = 200) -> None:
        """Process Readys and deliver due messages until nothing moves (bounded)."""
        for _ in range(max_rounds):
            moved = False
            for i in self.ids:
                while self.process_ready(i):
                    moved = True
            self.after_hop()
            if self.deliver():
                moved = True
            if not moved:
                return

    def after_hop(self) -> None:
        """Between a hop's Readys and its delivery: a hook for schedules that act mid-settle."""

    def step_round(self) -> None:
        """One tick of simulated time for everyone, then let the network settle."""
        self.time += 1
        self.net.now = self.time
        for i in self.ids:
            node = self.members[i].node
            if node is not None:
                node.tick()
        self.settle()
        self.retire_removed()

    # -- clients ---------------------------------------------------------------------------
    def propose(self, i: int, value: bytes) -> bool:
        node = self.members[i].node
        self.pending.setdefault(value, 0)
        if node is None:
            return False
        try:
            node.propose(value)
        except raft.ProposalDropped:
            return False
        return True

    def leader(self) -> int | None:
        """The member every running member agrees is leader at the highest term, if any."""
        best: tuple[int, int] | None = None
        for i in self.alive():
            node = self.members[i].node
            assert node is not None
            r = node.raft
            if r.state == raft.StateType.StateLeader and (best is None or r.term > best[0]):
                best = (r.term, i)
        return None if best is None else best[1]

    def converged(self) -> bool:
        """One leader all members of its configuration follow, nothing pending, every member
        applied the commit."""
        lead = self.leader()
        if lead is None or self.pending:
            return False
        ln = self.members[lead].node
        assert ln is not None
        commit = ln.raft.raft_log.committed
        cs = ln.status().conf_state
        for i in cs.voters + cs.learners:
            node = self.members[i].node
            if node is None:
                return False
            r = node.raft
            if r.lead != lead or r.term != ln.raft.term or self.members[i].sm_applied != commit:
                return False
        return True

    def heal_and_converge(self, liveness_ticks: int) -> None:
        """Heal every fault, restart every member, and require a leader that commits everything.

        Raises `InvariantViolation` (with the leader's progress and the recent events) when the
        cluster has not converged `liveness_ticks` ticks after healing: a liveness failure.
        """
        self.net.recover()
        self.cfg.crash_mid_ready = 0.0
        for i in self.ids:
            self.restart(i)
        self.note("heal all")
        for t in range(liveness_ticks):
            self.step_round()
            if self.converged():
                return
            if t % 5 == 0:
                lead = self.leader()
                if lead is not None:
                    for v in list(self.pending):
                        self.propose(lead, v)
        lead = self.leader()
        if lead is not None:
            ln = self.members[lead].node
            assert ln is not None
            self.note(f"leader progress {ln.raft.tracker.progress}")
        raise InvariantViolation(
            f"liveness: no convergence {liveness_ticks} ticks after healing "
            f"(leader={self.leader()}, pending={len(self.pending)})\n{self.describe()}\n"
            "recent events:\n  " + "\n  ".join(self.log)
        )

    def describe(self) -> str:
        rows = []
        for i in self.ids:
            m = self.members[i]
            node = m.node
            if node is None:
                what = "retired" if m.retired else "crashed" if m.started else "not started"
                rows.append(f"  {i}: {what}")
                continue
            s = node.status()
            cs = s.conf_state
            rows.append(
                f"  {i}: {s.role.name} term={s.term} lead={s.lead} commit={s.commit} "
                f"applied={s.applied} last={s.last_index} first={s.first_index} "
                f"voters={cs.voters} learners={cs.learners}"
            )
        return "\n".join(rows)


def random_fault(c: Cluster, rng: random.Random) -> None:
    """Inject one random fault (or repair) into the cluster."""
    ids = c.ids
    n = len(ids)
    r = rng.random()
    net = c.net
    if r < 0.15 and n > 1:
        k = rng.randint(1, n - 1)
        side = rng.sample(ids, k)
        rest = [i for i in ids if i not in side]
        net.heal()
        net.partition(side, rest)
        c.note(f"partition {sorted(side)}|{sorted(rest)}")
    elif r < 0.25 and n > 1:
        v = rng.choice(ids)
        net.isolate(v, ids)
        c.note(f"isolate {v}")
    elif r < 0.33 and n > 1:
        a, b = rng.sample(ids, 2)
        net.cut(a, b)
        c.note(f"cut {a}-{b}")
    elif r < 0.43 and n > 1:
        a, b = rng.sample(ids, 2)
        perc = rng.choice([0.1, 0.3, 0.6, 1.0])
        net.drop(a, b, perc)
        c.note(f"drop {a}->{b} {perc}")
    elif r < 0.50:
        net.delay(rng.choice([0.1, 0.3, 0.5]), rng.randint(1, 4))
        c.note("delay")
    elif r < 0.55:
        net.duplicate(rng.choice([0.05, 0.2]))
        c.note("duplicate")
    elif r < 0.68:
        net.heal()
        c.note("heal")
    elif r < 0.75:
        net.recover()
        c.note("recover")
    elif r < 0.88:
        alive = c.alive()
        if alive:
            c.crash(rng.choice(alive))
    else:
        dead = [i for i in ids if c.members[i].node is None]
        if dead:
            c.restart(rng.choice(dead))
    if n == 1:
        return
    if rng.random() < 0.02:
        net.ignore(rng.choice([MT.MsgApp, MT.MsgHeartbeat, MT.MsgAppResp, MT.MsgVote]))
        c.note("ignore a message type")


def random_membership_change(c: Cluster, rng: random.Random) -> None:
    """Propose one membership change through the log, usually at the leader.

    Nothing here waits for the previous change: while one is unapplied the leader turns the
    next into an empty entry (the guard under test). A member to add gets a fresh id and
    starts only once its addition is applied.
    """
    lead = c.leader()
    if lead is None:
        return
    ln = c.members[lead].node
    assert ln is not None
    cs = ln.status().conf_state
    active = [i for i in c.ids if c.members[i].started and not c.members[i].retired]
    ops = ["update"]
    if len(active) < c.cfg.max_members:
        ops += ["add-learner", "add-learner", "add-voter"]
    if cs.learners:
        ops += ["promote", "promote", "remove-learner"]
    if len(cs.voters) > 1:
        ops += ["remove-voter"]
    op = rng.choice(ops)
    if op == "add-learner":
        cc = raft.ConfChange(CCT.ConfChangeAddLearnerNode, c.new_member())
    elif op == "add-voter":
        cc = raft.ConfChange(CCT.ConfChangeAddNode, c.new_member())
    elif op == "promote":
        cc = raft.ConfChange(CCT.ConfChangeAddNode, rng.choice(cs.learners))
    elif op == "remove-learner":
        cc = raft.ConfChange(CCT.ConfChangeRemoveNode, rng.choice(cs.learners))
    elif op == "remove-voter":
        cc = raft.ConfChange(CCT.ConfChangeRemoveNode, rng.choice(cs.voters))
    else:
        cc = raft.ConfChange(CCT.ConfChangeUpdateNode, rng.choice(cs.voters))
    via = lead if rng.random() < 0.7 else rng.choice(c.alive())
    node = c.members[via].node
    assert node is not None
    try:
        node.propose_conf_change(cc)
    except raft.ProposalDropped:
        return
    c.note(f"propose {op} {cc.node_id} via {via}")


def run_random_faults(seed: int, liveness_ticks: int = 400) -> Cluster:
    """One seeded run: chaos, then heal and require convergence. Raises on any violation."""
    rng = random.Random(seed)
    size = rng.choice([1, 2, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 6, 7])
    cfg = SimConfig(
        size=size,
        seed=seed,
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        election_tick=rng.choice([5, 10]),
        compact_threshold=rng.choice([0, 5, 20, 50]),
        crash_mid_ready=rng.choice([0.0, 0.002, 0.01]),
        max_size_per_msg=rng.choice([1 << 20, 64]),
        max_inflight_msgs=rng.choice([256, 2]),
        step_during_persist=rng.choice([0.0, 0.3, 1.0]),
        durable_sm=rng.random() < 0.5,
        membership=rng.choice([0.0, 0.02, 0.05, 0.1]),
    )
    c = Cluster(cfg)
    c.note(f"config {cfg}")
    counter = 0
    for _ in range(rng.randint(50, 200)):
        if rng.random() < 0.06:
            random_fault(c, rng)
        if cfg.membership and rng.random() < cfg.membership:
            random_membership_change(c, rng)
        if rng.random() < 0.4:
            counter += 1
            c.propose(rng.choice(c.ids), b"v%d" % counter)
        c.step_round()
    c.heal_and_converge(liveness_ticks)
    return c
