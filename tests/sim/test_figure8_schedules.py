"""Seeded schedules biased toward the Raft paper's Figure 8 (§5.4.2), on 5 members.

The random-fault simulation rarely produces Figure 8's interleaving: a leader replicates an
entry to a minority and is cut off; another leader appends a different entry at that index and
is cut off before replicating it; the first returns at a higher term, pushes its old-term entry
to a majority and is cut off again before an entry of its own term follows; the second returns
and is elected. Only the rule "commit by counting replicas only entries of the current term"
keeps that old-term entry from being committed and then overwritten.

Here a nemesis watches the hops of every settle (a hop: process every Ready, then deliver what
is due) and, right after a leader sent entries, often isolates it (alone or with one follower,
so the entries reach a minority), sometimes crashing it too; partitions are short and crashed
members come back soon. Every MsgApp carries one entry, so an old-term entry and the leader's
own entry reach a follower in different hops. The cluster's checkers (election safety, log
matching, leader completeness, state machine safety) run after every Ready; after the chaos
the network heals and the cluster must converge.

`--seed N` replays one seed; `--seeds N` runs N.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from node.raft import Message, MessageType, StateType
from tests.sim.cluster import Cluster, SimConfig
from tests.sim.seeds import run_seeds

DEFAULT_SEEDS = 1000  # ~20 s on an idle core (~20 ms a seed); `make test-long` runs more
LONG_SEEDS = 10000
SIZE = 5

MT = MessageType


@dataclass(slots=True)
class Nemesis:
    """Cuts leaders off right after they send entries, and undoes its faults soon after."""

    rng: random.Random
    hit: float  # probability of striking a leader in a hop where it sent entries
    crash_share: float  # of those strikes, the share that also crash the leader
    quiet: bool = False  # no faults at all (the liveness phase)
    heal_at: int = -1  # tick at which the current partition heals (-1: none)
    restart_at: dict[int, int] = field(default_factory=dict)  # crashed member -> restart tick

    def after_hop(self, c: Figure8Cluster) -> None:
        """Between a hop's Readys and its delivery: maybe strike a leader that just sent."""
        senders, c.sent_entries = c.sent_entries, set()
        for lead in sorted(senders):
            node = c.members[lead].node
            if node is None or node.raft.state != StateType.StateLeader:
                continue
            if self.rng.random() >= self.hit:
                continue
            # The leader keeps at most one follower: what it just sent (still in flight) reaches
            # a minority. A partition also drops messages already in flight across it.
            others = [i for i in c.ids if i != lead]
            side = [lead, *self.rng.sample(others, self.rng.randint(0, 1))]
            rest = [i for i in c.ids if i not in side]
            c.net.heal()
            c.net.partition(side, rest)
            self.heal_at = c.time + self.rng.randint(2, 15)
            c.note(f"nemesis: partition {sorted(side)}|{sorted(rest)} after leader {lead} sent")
            if self.rng.random() < self.crash_share:
                c.crash(lead)  # and it loses its volatile state (restarted by on_tick)

    def on_tick(self, c: Figure8Cluster) -> None:
        """Undo faults whose time has come; now and then start a short random partition."""
        if self.heal_at >= 0 and c.time >= self.heal_at:
            self.heal_at = -1
            c.net.heal()
            c.note("nemesis: heal")
        for i in c.ids:
            if c.members[i].node is None and i not in self.restart_at:
                self.restart_at[i] = c.time + self.rng.randint(1, 12)
        for i, t in sorted(self.restart_at.items()):
            if c.time >= t:
                del self.restart_at[i]
                c.restart(i)
        if not self.quiet and self.heal_at < 0 and self.rng.random() < 0.03:
            side = self.rng.sample(c.ids, self.rng.randint(1, 2))
            c.net.partition(side, [i for i in c.ids if i not in side])
            self.heal_at = c.time + self.rng.randint(2, 10)
            c.note(f"nemesis: partition {sorted(side)}")


class Figure8Cluster(Cluster):
    """A `Cluster` whose nemesis acts between the hops of a tick."""

    def __init__(self, cfg: SimConfig, nemesis: Nemesis) -> None:
        self.sent_entries: set[int] = set()  # members that sent a MsgApp with entries this hop
        self.nemesis = nemesis
        super().__init__(cfg)

    def transmit(self, msg: Message) -> None:
        if msg.type == MT.MsgApp and msg.entries:
            self.sent_entries.add(msg.frm)
        super().transmit(msg)

    def after_hop(self) -> None:
        self.nemesis.after_hop(self)

    def step_round(self) -> None:
        self.nemesis.on_tick(self)
        super().step_round()


def run_figure8_schedule(seed: int, liveness_ticks: int = 300) -> Figure8Cluster:
    """One seeded run: leader-targeted chaos, then heal and require convergence."""
    rng = random.Random(seed)
    cfg = SimConfig(
        size=SIZE,
        seed=seed,
        pre_vote=rng.random() < 0.5,
        check_quorum=rng.random() < 0.5,
        election_tick=5,
        max_size_per_msg=1,  # one entry per MsgApp
        max_inflight_msgs=rng.choice([1, 1, 4]),
        crash_mid_ready=rng.choice([0.0, 0.0, 0.0, 0.002]),
    )
    nemesis = Nemesis(
        random.Random(seed * 31 + 7),
        hit=rng.choice([0.4, 0.6, 0.8]),
        crash_share=rng.choice([0.0, 0.3, 0.6]),
    )
    c = Figure8Cluster(cfg, nemesis)
    c.note(f"config {cfg} hit={nemesis.hit} crash_share={nemesis.crash_share}")
    counter = 0
    for _ in range(rng.randint(80, 160)):
        lead = c.leader()
        if lead is not None and rng.random() < 0.6:
            counter += 1
            c.propose(lead, b"v%d" % counter)
        c.step_round()
    # The liveness phase: no more faults from the nemesis, then heal and require convergence.
    c.nemesis = Nemesis(random.Random(0), hit=0.0, crash_share=0.0, quiet=True)
    c.heal_and_converge(liveness_ticks)
    return c


def test_figure8_schedules(request: pytest.FixtureRequest) -> None:
    """Leaders cut off right after replicating to a minority never lose a committed entry."""
    run_seeds(request, run_figure8_schedule, DEFAULT_SEEDS)


@pytest.mark.slow
def test_figure8_schedules_long(request: pytest.FixtureRequest) -> None:
    """The same schedules over many more seeds (make test-long)."""
    run_seeds(request, run_figure8_schedule, LONG_SEEDS, 1_000_000)
