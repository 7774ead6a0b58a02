"""A simulated cluster: N `RawNode`s, durable storage per member, a seeded `Network`.

Each member follows the real driver's loop (persist -> send -> apply -> advance). What a
member "persisted" is exactly its `MemoryStorage` (written only in the persist step), so
`crash` loses the unstable log, unsent messages and volatile state, and `restart` rebuilds
the member from storage alone. Safety invariants are checked after every Ready.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NoReturn

from node import raft
from tests.sim import invariants as inv
from tests.sim.network import Network

MT = raft.MessageType


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


class Cluster:
    """Runs members in lock step: tick everyone, then deliver until the network is quiet."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.net = Network(random.Random(cfg.seed * 7919 + 1))
        self.ids = list(range(1, cfg.size + 1))
        self.members = {i: Member(i) for i in self.ids}
        self.history = inv.History()
        self.snap_registry: dict[bytes, int] = {}
        self.pending: dict[bytes, int] = {}  # client values proposed but not yet applied
        self.applied_values: set[bytes] = set()
        self.log: list[str] = []  # a short event trail for failure messages
        self.time = 0
        for i in self.ids:
            self.start(i)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, i: int) -> None:
        m = self.members[i]
        m.incarnation += 1
        st = m.storage
        snap = st.snapshot()
        if snap.is_empty():
            m.sm_applied, m.sm_hash = 0, 0
        else:
            m.sm_applied = snap.metadata.index
            m.sm_hash = int(snap.data.split(b":")[1])
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
                peers=tuple(self.ids),
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
        if self.members[i].node is None:
            self.start(i)
            self.note(f"restart {i}")

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
            st.set_hard_state(rd.hard_state)
            node = m.node
            assert node is not None
            c = rd.hard_state.commit
            if c > self.history.committed[0]:
                t = node.raft.raft_log.zero_term_on_err(c)
                self.history.committed = (c, t, rd.hard_state.term)

    def apply(self, m: Member, rd: raft.Ready) -> None:
        for e in rd.committed_entries:
            if e.index != m.sm_applied + 1:
                self.fail(f"member {m.id} applied {e.index} after {m.sm_applied}")
            m.sm_hash = inv.chain(m.sm_hash, e)
            m.sm_applied = e.index
            errs = inv.check_state_machine_safety(self.history, m.id, e, m.sm_hash)
            if errs:
                self.fail(errs[0])
            if e.data:
                self.applied_values.add(e.data)
                self.pending.pop(e.data, None)
        th = self.cfg.compact_threshold
        st = m.storage
        if th and m.sm_applied - st.first_index() >= th and m.sm_applied <= st.last_index():
            node = m.node
            assert node is not None
            data = b"%d:%d" % (m.sm_applied, m.sm_hash)
            st.create_snapshot(m.sm_applied, node.status().conf_state, data)
            keep = self.rng.randint(0, 3)
            if m.sm_applied - keep >= st.first_index():
                st.compact(m.sm_applied - keep)

    def check_member(self, m: Member) -> None:
        node = m.node
        if node is None:
            return
        r = node.raft
        if r.state == raft.StateType.StateLeader:
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
        target = self.members[msg.to].node
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
        """One leader all members follow, nothing pending, every member applied the commit."""
        lead = self.leader()
        if lead is None or self.pending:
            return False
        ln = self.members[lead].node
        assert ln is not None
        commit = ln.raft.raft_log.committed
        for i in self.ids:
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
            node = self.members[i].node
            if node is None:
                rows.append(f"  {i}: crashed")
                continue
            s = node.status()
            rows.append(
                f"  {i}: {s.role.name} term={s.term} lead={s.lead} commit={s.commit} "
                f"applied={s.applied} last={s.last_index} first={s.first_index}"
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
    )
    c = Cluster(cfg)
    c.note(f"config {cfg}")
    counter = 0
    for _ in range(rng.randint(50, 200)):
        if rng.random() < 0.06:
            random_fault(c, rng)
        if rng.random() < 0.4:
            counter += 1
            c.propose(rng.choice(c.ids), b"v%d" % counter)
        c.step_round()
    c.heal_and_converge(liveness_ticks)
    return c
