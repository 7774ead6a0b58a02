"""The interaction environment behind the transcripts in tests/raft/testdata (after etcd-raft's
rafttest.InteractionEnv): a handful of members, a shared mailbox, and commands that drive them.

Every member's log lines go through a `RedirectLogger` into the command's output, so what the
core logs is part of the specification.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from node.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Ready,
    Snapshot,
    SnapshotMetadata,
)
from tests.datadriven import TestData

MT = MessageType
# propose-conf-change kinds -> raftpb's change types
_CC_KINDS = {
    "add": ConfChangeType.ConfChangeAddNode,
    "add-learner": ConfChangeType.ConfChangeAddLearnerNode,
    "remove": ConfChangeType.ConfChangeRemoveNode,
    "update": ConfChangeType.ConfChangeUpdateNode,
}
_LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3, "none": 9}


class RedirectLogger:
    """A `RaftLogger` writing `LEVEL message` lines into a buffer (the transcript output)."""

    def __init__(self, env: InteractionEnv) -> None:
        self.env = env

    def _emit(self, level: int, name: str, msg: str) -> None:
        if level >= self.env.level:
            self.env.out.append(f"{name} {msg}")

    def debug(self, msg: str) -> None:
        self._emit(0, "DEBUG", msg)

    def info(self, msg: str) -> None:
        self._emit(1, "INFO", msg)

    def warning(self, msg: str) -> None:
        self._emit(2, "WARN", msg)

    def error(self, msg: str) -> None:
        self._emit(3, "ERROR", msg)


@dataclass(slots=True)
class Member:
    node: RawNode
    storage: MemoryStorage
    cfg: Config
    applied: list[bytes] = field(default_factory=list)
    conf: ConfState | None = None  # the ConfState at applied_index, once a change was applied
    applied_index: int = 0  # last index handed to the state machine (Config.applied on restart)


def fmt_entry(e: Entry) -> str:
    """`term/index data`; a conf change as `EntryConfChange AddLearnerNode 4`."""
    if e.type == EntryType.EntryConfChange:
        cc = ConfChange.decode(e.data)
        kind = cc.type.name.removeprefix("ConfChange")
        return f"{e.term}/{e.index} EntryConfChange {kind} {cc.node_id}"
    return f"{e.term}/{e.index} {e.data.decode() if e.data else '<empty>'}"


def fmt_entries(ents: list[Entry]) -> str:
    return "[" + ", ".join(fmt_entry(e) for e in ents) + "]"


def fmt_conf(cs: ConfState) -> str:
    out = f"voters=({' '.join(map(str, cs.voters))})"
    if cs.learners:
        out += f" learners=({' '.join(map(str, cs.learners))})"
    return out


def fmt_msg(m: Message) -> str:
    """One message, etcd-style: `1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[...]`."""
    s = f"{m.frm}->{m.to} {m.type.name} Term:{m.term} Log:{m.log_term}/{m.index}"
    if m.commit:
        s += f" Commit:{m.commit}"
    if m.reject:
        s += f" Rejected (Hint: {m.reject_hint})"
    if m.entries:
        s += f" Entries:{fmt_entries(list(m.entries))}"
    if m.snapshot is not None:
        meta = m.snapshot.metadata
        s += f" Snapshot: Index:{meta.index} Term:{meta.term}"
    if m.context:
        s += f" Context:{m.context.decode()}"
    return s


class InteractionEnv:
    """Members 1..N and one mailbox; `handle(td)` runs a transcript command.

    At log level info or lower, Readys and message deliveries are traced into the output too;
    at warn and above only the members' warnings (and command results) are.
    """

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}
        self.mailbox: list[Message] = []
        self.cuts: set[tuple[int, int]] = set()
        self.down: set[int] = set()  # crashed members: no ticks, no Readys, messages to them lost
        self.level = _LEVELS["info"]
        self.out: list[str] = []

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, td: TestData) -> str:
        self.out = []
        fn = getattr(self, "cmd_" + td.cmd.replace("-", "_"), None)
        if fn is None:
            raise ValueError(f"{td.pos}: unknown command {td.cmd}")
        fn(td)
        return "\n".join(self.out)

    def _ids(self, td: TestData) -> list[int]:
        """The members named positionally (default: all), without the crashed ones."""
        ids = [int(x) for x in td.positional()] or sorted(self.members)
        return [i for i in ids if i not in self.down]

    # -- commands --------------------------------------------------------------------------
    def cmd_log_level(self, td: TestData) -> None:
        self.level = _LEVELS[td.positional()[0]]

    def cmd_add_nodes(self, td: TestData) -> None:
        """add-nodes N voters=(1,2,3) [learners=(4)] [index=I] [checkquorum=true] [prevote=true]
        [election=10] [inflight=256] [max-msg-size=B] (B=1: every MsgApp carries exactly one
        entry). Members joining later name the bootstrap configuration as their voters."""
        n = int(td.positional()[0])
        voters = tuple(int(v) for v in td.arg_list("voters"))
        learners = tuple(int(v) for v in td.arg_list("learners"))
        index = int(td.arg("index", "0") or 0)
        first = len(self.members) + 1
        for i in range(first, first + n):
            st = MemoryStorage()
            if index:
                cs = ConfState(voters=voters, learners=learners)
                meta = SnapshotMetadata(index=index, term=1, conf_state=cs)
                st.apply_snapshot(Snapshot(metadata=meta, data=b""))
                # The bootstrap entries are of term 1, so the first election is at term 2 (a
                # real log never holds entries of a term newer than its hard state's).
                st.set_hard_state(HardState(term=1, commit=index))
            cfg = Config(
                id=i,
                peers=voters,
                learners=learners,
                election_tick=int(td.arg("election", "10") or 10),
                heartbeat_tick=1,
                rng=random.Random(int(td.arg("seed", "0") or 0) * 100 + i),
                check_quorum=td.arg("checkquorum", "true") == "true",
                pre_vote=td.arg("prevote", "true") == "true",
                max_inflight_msgs=int(td.arg("inflight", "256") or 256),
                max_size_per_msg=int(td.arg("max-msg-size", str(1 << 20)) or 1 << 20),
                logger=RedirectLogger(self),
            )
            self.members[i] = Member(RawNode(cfg, st), st, cfg, applied_index=index)

    def cmd_campaign(self, td: TestData) -> None:
        self.members[int(td.positional()[0])].node.campaign()

    def cmd_propose(self, td: TestData) -> None:
        self._submit(td, RawNode.propose)

    def cmd_read_index(self, td: TestData) -> None:
        self._submit(td, RawNode.read_index)

    def _submit(self, td: TestData, call: Callable[[RawNode, bytes], None]) -> None:
        """`<id> <data>`: hand data to a member; a dropped proposal is part of the output."""
        pos = td.positional()
        try:
            call(self.members[int(pos[0])].node, pos[1].encode())
        except ProposalDropped as e:
            self.out.append(str(e))

    def cmd_propose_conf_change(self, td: TestData) -> None:
        """propose-conf-change <id> <add|add-learner|remove|update> <member>: propose one
        membership change at member <id>; members apply committed changes in process-ready."""
        pos = td.positional()
        cc = ConfChange(_CC_KINDS[pos[1]], int(pos[2]))
        try:
            self.members[int(pos[0])].node.propose_conf_change(cc)
        except ProposalDropped as e:
            self.out.append(str(e))

    def cmd_conf(self, td: TestData) -> None:
        """conf [ids]: each member's configuration (and whether it is a learner in it)."""
        for i in [int(x) for x in td.positional()] or sorted(self.members):
            if i in self.down:
                self.out.append(f"{i}: crashed")
                continue
            s = self.members[i].node.status()
            learner = " (learner)" if s.is_learner else ""
            self.out.append(f"{i}: {fmt_conf(s.conf_state)}{learner}")

    def cmd_transfer_leadership(self, td: TestData) -> None:
        frm = int(td.arg("from") or 0)
        self.members[frm].node.transfer_leader(int(td.arg("to") or 0))

    def cmd_forge(self, td: TestData) -> None:
        """forge from=F to=T type=MsgApp term=N [index=I] [logterm=L] [commit=C]
        [entries=(a,b)]: step a message F never sent straight into T, as a process that
        reached T's peer port posing as F would (entries get term N, indexes after I)."""
        term = int(td.arg("term", "0") or 0)
        index = int(td.arg("index", "0") or 0)
        entries = [
            Entry(term=term, index=index + k, data=data.encode())
            for k, data in enumerate(td.arg_list("entries"), 1)
        ]
        msg = Message(
            MT.__members__[td.arg("type") or ""],
            to=int(td.arg("to") or 0),
            frm=int(td.arg("from") or 0),
            term=term,
            log_term=int(td.arg("logterm", "0") or 0),
            index=index,
            commit=int(td.arg("commit", "0") or 0),
            entries=entries,
        )
        self.members[msg.to].node.step(msg)

    def cmd_tick(self, td: TestData) -> None:
        """tick <id> [count=N]: N heartbeat intervals elapse on member <id>."""
        count = int(td.arg("count", "1") or 1)
        for i in self._ids(td):
            for _ in range(count):
                self.members[i].node.tick()

    def cmd_tick_heartbeat(self, td: TestData) -> None:
        for i in self._ids(td):
            self.members[i].node.tick()

    def cmd_tick_election(self, td: TestData) -> None:
        """Tick until the member's randomized election timeout has certainly passed."""
        for i in self._ids(td):
            r = self.members[i].node.raft
            for _ in range(r.randomized_election_timeout):
                r.tick()

    def cmd_tick_stabilize(self, td: TestData) -> None:
        """tick-stabilize [ids] count=N: N rounds of (tick everyone, then stabilize)."""
        for _ in range(int(td.arg("count", "1") or 1)):
            for i in self._ids(td):
                self.members[i].node.tick()
            self.cmd_stabilize(td)

    def cmd_process_ready(self, td: TestData) -> None:
        for i in self._ids(td):
            self.process_ready(i)

    def cmd_deliver_msgs(self, td: TestData) -> None:
        """deliver-msgs [ids] [drop=(ids)]: deliver (or drop) the mailbox's messages to ids."""
        drop = {int(x) for x in td.arg_list("drop")}
        targets = {int(x) for x in td.positional()} or set(self.members)
        self.deliver(targets | drop, drop)

    def cmd_stabilize(self, td: TestData) -> None:
        """Process Readys and deliver messages until nothing happens any more."""
        targets = {int(x) for x in td.positional()} or set(self.members)
        ids = self._ids(td)
        for _ in range(100):
            moved = False
            for i in ids:
                if self.members[i].node.has_ready():
                    self.process_ready(i)
                    moved = True
            if self.deliver(targets, set()):
                moved = True
            if not moved:
                return
        raise AssertionError("stabilize did not converge in 100 rounds")

    def cmd_partition(self, td: TestData) -> None:
        """partition a=(1) b=(2,3): members in different groups cannot talk."""
        groups = [[int(v) for v in a.vals] for a in td.args]
        for gi, ga in enumerate(groups):
            for gb in groups[gi + 1 :]:
                for x in ga:
                    for y in gb:
                        self.cuts.add((min(x, y), max(x, y)))

    def cmd_heal(self, td: TestData) -> None:
        self.cuts.clear()

    def cmd_crash(self, td: TestData) -> None:
        """crash <id>: the member stops; messages already in the mailbox from it still arrive,
        messages to it are lost. Everything it persisted (every processed Ready) survives."""
        i = int(td.positional()[0])
        self.down.add(i)

    def cmd_restart(self, td: TestData) -> None:
        """restart <id>: rebuild a crashed member from its storage (volatile state is gone)."""
        i = int(td.positional()[0])
        m = self.members[i]
        self.down.discard(i)
        # The state machine kept the configuration at its applied index (as the server does).
        cfg = replace(m.cfg, applied=m.applied_index, conf_state=m.conf)
        m.node = RawNode(cfg, m.storage)

    def cmd_compact(self, td: TestData) -> None:
        """compact <id> <index>: snapshot the state machine at <index> and drop the log."""
        pos = td.positional()
        m = self.members[int(pos[0])]
        idx = int(pos[1])
        m.storage.create_snapshot(idx, m.node.status().conf_state, b"snap@%d" % idx)
        m.storage.compact(idx)

    def cmd_raft_log(self, td: TestData) -> None:
        m = self.members[int(td.positional()[0])]
        log = m.node.raft.raft_log
        ents = log.all_entries()
        if not ents:
            self.out.append(
                f"log is empty: first index={log.first_index()}, last index={log.last_index()}"
            )
        for e in ents:
            self.out.append(fmt_entry(e))

    def cmd_raft_state(self, td: TestData) -> None:
        for i in sorted(self.members):
            if i in self.down:
                self.out.append(f"{i}: crashed")
                continue
            r = self.members[i].node.raft
            self.out.append(f"{i}: {r.state.name} Term:{r.term} Lead:{r.lead}")

    def cmd_commits(self, td: TestData) -> None:
        """commits [ids]: each member's term, commit and applied index and its last entry.

        A crashed member shows what it persisted (its HardState and stable log).
        """
        for i in [int(x) for x in td.positional()] or sorted(self.members):
            m = self.members[i]
            if i in self.down:
                hs, _ = m.storage.initial_state()
                li = m.storage.last_index()
                self.out.append(
                    f"{i}: crashed Term:{hs.term} Commit:{hs.commit} Last:{m.storage.term(li)}/{li}"
                )
                continue
            log = m.node.raft.raft_log
            self.out.append(
                f"{i}: Term:{m.node.raft.term} Commit:{log.committed} Applied:{m.applied_index} "
                f"Last:{log.last_term()}/{log.last_index()}"
            )

    def cmd_status(self, td: TestData) -> None:
        s = self.members[int(td.positional()[0])].node.status()
        self.out.append(
            f"{s.id}: {s.role.name} term={s.term} vote={s.vote} commit={s.commit} "
            f"applied={s.applied} lead={s.lead}"
        )
        for pid, (match, nxt, state) in sorted(s.progress.items()):
            self.out.append(f"  {pid}: {state} match={match} next={nxt}")

    def cmd_counters(self, td: TestData) -> None:
        s = self.members[int(td.positional()[0])].node.status()
        self.out.append(
            f"leader_changes={s.leader_changes} elections_started={s.elections_started} "
            f"pre_votes_started={s.pre_votes_started} proposals_dropped={s.proposals_dropped} "
            f"read_index_failed={s.read_index_failed}"
        )

    # -- machinery -------------------------------------------------------------------------
    def process_ready(self, i: int) -> None:
        m = self.members[i]
        rd = m.node.ready()
        if self.level <= _LEVELS["info"]:
            self.out.append(f"> {i} handling Ready")
            self.out.extend("  " + ln for ln in self.describe_ready(rd))
        if rd.snapshot is not None:
            m.storage.apply_snapshot(rd.snapshot)
        m.storage.append(rd.entries)
        if rd.hard_state is not None:
            m.storage.set_hard_state(rd.hard_state)
        self.mailbox.extend(rd.messages)
        self.mailbox.extend(x for x in rd.messages_after_persist if x.to != i)
        if rd.snapshot is not None:
            m.conf = rd.snapshot.metadata.conf_state
        for e in rd.committed_entries:
            if e.type == EntryType.EntryConfChange:
                m.conf = m.node.apply_conf_change(ConfChange.decode(e.data))
            elif e.data:
                m.applied.append(e.data)
        if rd.committed_entries:
            m.applied_index = rd.committed_entries[-1].index
        elif rd.snapshot is not None:
            m.applied_index = rd.snapshot.metadata.index
        m.node.advance(rd)

    def describe_ready(self, rd: Ready) -> list[str]:
        out = []
        if rd.soft_state is not None:
            out.append(f"Lead:{rd.soft_state.lead} State:{rd.soft_state.role.name}")
        if rd.hard_state is not None:
            hs = rd.hard_state
            out.append(f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
        if rd.entries:
            out.append(f"Entries: {fmt_entries(list(rd.entries))}")
        if rd.snapshot is not None:
            meta = rd.snapshot.metadata
            out.append(f"Snapshot Index:{meta.index} Term:{meta.term}")
        if rd.committed_entries:
            out.append(f"CommittedEntries: {fmt_entries(list(rd.committed_entries))}")
        if rd.messages:
            out.append("Messages:")
            out.extend("  " + fmt_msg(x) for x in rd.messages)
        if rd.messages_after_persist:
            out.append("MessagesAfterPersist:")
            out.extend("  " + fmt_msg(x) for x in rd.messages_after_persist)
        out.extend(
            f"ReadState Index:{rs.index} Context:{rs.request_ctx.decode()}" for rs in rd.read_states
        )
        return out

    def deliver(self, targets: set[int], drop: set[int]) -> int:
        """Deliver (or drop) mailbox messages addressed to `targets`; how many were handled."""
        keep: list[Message] = []
        todo: list[Message] = []
        for x in self.mailbox:
            (todo if x.to in targets else keep).append(x)
        self.mailbox = keep
        for x in todo:
            trace = self.level <= _LEVELS["info"]
            cut = (min(x.frm, x.to), max(x.frm, x.to)) in self.cuts
            if x.to in drop or x.to in self.down or cut:
                if trace:
                    self.out.append(f"dropped: {fmt_msg(x)}")
                continue
            if trace:
                self.out.append(fmt_msg(x))
            self.members[x.to].node.step(x)
            if x.type == MT.MsgSnap and x.frm not in self.down:
                self.members[x.frm].node.report_snapshot(x.to, failed=False)
        return len(todo)
