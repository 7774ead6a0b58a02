"""`RawNode`: the driver-facing API of the core, and the `Ready` batch it hands out.

The driver loop, in this order (raftexample's, with etcd's async-storage rule made explicit):

    rd = node.ready()
    persist rd.hard_state, rd.entries, rd.snapshot (fsync iff rd.must_sync), then fill storage
    send rd.messages (they may even leave before the fsync) and, after the fsync,
         rd.messages_after_persist (skipping those addressed to ourselves)
    apply rd.committed_entries; serve rd.read_states once applied >= their index
    node.advance(rd)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.raft.core import LOCAL_MSGS, RaftCore
from node.raft.errors import ProposalDropped, StepLocalMsg
from node.raft.members import members
from node.raft.messages import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
)
from node.raft.state import ReadState, SoftState, StateType
from node.raft.status import Status

if TYPE_CHECKING:
    from node.raft.config import Config
    from node.raft.storage import Storage

MT = members(MessageType)  # cheap member lookups (node.raft.members)
ST = members(StateType)
_EMPTY_HS = HardState()


@dataclass(slots=True)
class Ready:
    """Everything the driver must do; the field comments are the contract."""

    soft_state: SoftState | None = None  # lead/role changed; never persisted
    hard_state: HardState | None = None  # term, vote, commit: persist BEFORE messages_after_persist
    entries: list[Entry] = field(default_factory=list)  # append to the WAL, then to storage
    snapshot: Snapshot | None = None  # install (WAL + storage) before applying anything after it
    committed_entries: list[Entry] = field(default_factory=list)  # apply after persisting
    # Requests (MsgApp, MsgHeartbeat, MsgVote/PreVote, forwarded MsgProp, ...): may leave at once.
    messages: list[Message] = field(default_factory=list)
    # MsgAppResp / MsgVoteResp / MsgPreVoteResp: only after the fsync (thesis §3.8). Those
    # addressed to this member are stepped back in by advance(); the driver never sends them.
    messages_after_persist: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False  # fsync needed: entries, term, vote or a snapshot changed


class RawNode:
    """A Raft member without threads or clocks: the driver calls in, nothing calls out."""

    __slots__ = ("_prev_hard", "_prev_soft", "raft")

    def __init__(self, cfg: Config, storage: Storage) -> None:
        self.raft = RaftCore(cfg, storage)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # -- inputs ----------------------------------------------------------------------------
    def tick(self) -> None:
        """One heartbeat interval elapsed (the core's only notion of time)."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (MsgHup), with PreVote first when configured."""
        self.raft.step(Message(type=MT.MsgHup, frm=self.raft.id))

    def propose(self, data: bytes) -> None:
        """Propose `data` for the log; raises `ProposalDropped` when it cannot be accepted."""
        self.raft.step(
            Message(type=MT.MsgProp, frm=self.raft.id, entries=[Entry(term=0, index=0, data=data)])
        )

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change; raises `ProposalDropped` as `propose` does.

        It takes effect only when the driver applies the committed entry and calls
        `apply_conf_change`. While another change is unapplied the leader turns this one into
        an empty normal entry (one change at a time): its proposer never sees it applied.
        """
        e = Entry(term=0, index=0, type=EntryType.EntryConfChange, data=cc.encode())
        self.raft.step(Message(type=MT.MsgProp, frm=self.raft.id, entries=[e]))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed EntryConfChange: exactly once per such entry, in log order, while
        applying its Ready (each call marks the oldest conf change handed out as applied,
        which lifts the one-change-at-a-time guard before `advance`).

        Returns the configuration now in force (persist it with the applied index: pass it
        back as `Config.conf_state` at restart). A change with node_id NONE changes nothing
        but ends the pending change, so the server applies one in place of a refused change.
        """
        return self.raft.apply_conf_change(cc)

    def step(self, m: Message) -> None:
        """Feed a message received from a peer.

        Raises `StepLocalMsg` for local-only types. A peer's forwarded proposal or read that
        cannot be served here is dropped silently (and counted), as etcd does.
        """
        if m.type in LOCAL_MSGS:
            raise StepLocalMsg(f"raft: cannot step raft local message {m.type.name}")
        if m.frm not in self.raft.tracker.progress and m.type in (
            MT.MsgAppResp,
            MT.MsgHeartbeatResp,
            MT.MsgVoteResp,
            MT.MsgPreVoteResp,
        ):
            self.raft.counters.messages_dropped += 1
            return  # a response from a member not in the configuration
        try:
            self.raft.step(m)
        except ProposalDropped:
            pass

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; a `ReadState` with `ctx` (unique!) follows in a Ready."""
        if self.raft.lead == NONE:
            self.raft.counters.read_index_failed += 1
            raise ProposalDropped("no leader")
        self.raft.step(Message(type=MT.MsgReadIndex, context=ctx))

    def transfer_leader(self, to: int) -> None:
        """Ask the leader to hand leadership to `to` (it catches up, then gets MsgTimeoutNow)."""
        self.raft.step(Message(type=MT.MsgTransferLeader, frm=to))

    def heartbeat(self, to: int) -> None:
        """A leader heartbeats `to` now rather than at its next heartbeat tick (up to a
        heartbeat interval later): the driver calls it when its stream to `to` connects, so
        a restarted follower learns the leader, and the leader where the follower's log
        stands (what it needs, a snapshot perhaps), that much sooner. A no-op elsewhere;
        as any heartbeat it carries the pending read index's context (etcd's
        bcastHeartbeat), and an extra one changes nothing else."""
        r = self.raft
        if r.state != ST.StateLeader or to == r.id or to not in r.tracker.ids():
            return
        r.send_heartbeat(to, r.read_only.last_pending_request_ctx())
        r.counters.heartbeats_sent += 1

    def report_unreachable(self, to: int) -> None:
        """The transport failed to reach `to`: the leader falls back to probing it."""
        self.raft.step(Message(type=MT.MsgUnreachable, frm=to))

    def report_snapshot(self, to: int, failed: bool) -> None:
        """The transport finished sending a snapshot to `to` (or failed to)."""
        self.raft.step(Message(type=MT.MsgSnapStatus, frm=to, reject=failed))

    # -- outputs ---------------------------------------------------------------------------
    def has_ready(self) -> bool:
        """Whether `ready()` would return anything to do.

        The driver asks after every Ready, so the usual "no" is answered from plain
        comparisons: no state objects are built to compare them.
        """
        r = self.raft
        r.flush()
        if r.msgs or r.msgs_after_append or r.read_states:
            return True
        prev_soft = self._prev_soft
        if r.lead != prev_soft.lead or r.state != prev_soft.role:
            return True
        log = r.raft_log
        prev = self._prev_hard
        if r.term != prev.term or r.vote != prev.vote or log.committed != prev.commit:
            return True
        u = log.unstable
        if u.snapshot is not None:
            # A snapshot must be installed before anything after it is applied.
            return not u.snapshot_in_progress or u.offset_in_progress - u.offset < len(u.entries)
        return u.offset_in_progress - u.offset < len(u.entries) or log.committed > log.applying

    @property
    def ticks_until_campaign(self) -> int:
        """Ticks left before this member's election timeout fires (0: it fires at the next
        tick); the driver's initial tick advance (node/server/tick_advance.py) sizes its
        fast-forward from it."""
        r = self.raft
        return max(0, r.randomized_election_timeout - r.election_elapsed)

    @property
    def leads(self) -> bool:
        """The core is the leader now, also between `ready()` and `advance()` (a message
        stepped meanwhile may have made it step down): cheaper than `status()`."""
        return self.raft.state == ST.StateLeader

    def take_messages(self) -> list[Message]:
        """The requests ticked or stepped out since the last `ready()`, without the rest of one.

        They are `Ready.messages` (requests that may leave at once), so a driver still
        persisting the last Ready may send them meanwhile: a leader's heartbeats then leave
        on time however long its fsync takes, as etcd-io/raft's node goroutine keeps ticking
        while the application persists. Entries, hard state, acknowledgements, committed
        entries and read states stay for the next Ready.
        """
        r = self.raft
        r.flush()
        msgs = r.msgs
        r.msgs = []
        return msgs

    def ready(self) -> Ready:
        """The next batch of work; it is accepted at once (call `advance` when it is done)."""
        r = self.raft
        r.flush()
        log = r.raft_log
        u = log.unstable
        committed = log.next_committed_ents()
        rd = Ready(
            entries=u.next_entries(),
            committed_entries=committed,
            messages=r.msgs,
            messages_after_persist=r.msgs_after_append,
        )
        if u.snapshot is not None and not u.snapshot_in_progress:
            rd.snapshot = u.snapshot
        prev_soft = self._prev_soft
        if r.lead != prev_soft.lead or r.state != prev_soft.role:
            rd.soft_state = self._prev_soft = r.soft_state()
        prev = self._prev_hard
        if r.term != prev.term or r.vote != prev.vote or log.committed != prev.commit:
            hs = r.hard_state()
            rd.hard_state = hs
            rd.must_sync = hs.term != prev.term or hs.vote != prev.vote
            self._prev_hard = hs
        if rd.entries or rd.snapshot is not None:
            rd.must_sync = True
        if r.read_states:
            rd.read_states = r.read_states
            r.read_states = []
        r.msgs = []
        r.msgs_after_append = []
        u.accept_in_progress()
        if committed:
            log.accept_applying(committed[-1].index)
            r.note_applying(committed)
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver finished `rd`: persisted it, sent its messages and applied its entries."""
        r = self.raft
        log = r.raft_log
        if rd.snapshot is not None:
            idx = rd.snapshot.metadata.index
            log.stable_snap_to(idx)
            if idx > log.applied:
                log.applied_to(idx)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
            r.note_applied(log.applied)
        me = r.id
        for m in rd.messages_after_persist:
            if m.to == me:
                r.step(m)

    # -- introspection ---------------------------------------------------------------------
    def status(self) -> Status:
        r = self.raft
        log = r.raft_log
        c = r.counters
        st = Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            commit=log.committed,
            applied=log.applied,
            lead=r.lead,
            role=r.state,
            conf_state=r.tracker.conf_state(),
            last_index=log.last_index(),
            first_index=log.first_index(),
            lead_transferee=r.lead_transferee,
            is_learner=r.is_learner(),
            leader_changes=c.leader_changes,
            elections_started=c.elections_started,
            pre_votes_started=c.pre_votes_started,
            proposals_dropped=c.proposals_dropped,
            read_index_failed=c.read_index_failed,
            heartbeats_sent=c.heartbeats_sent,
            messages_dropped=c.messages_dropped,
            snapshots_sent=c.snapshots_sent,
            append_rejections=c.append_rejections,
            leader_transfers=c.leader_transfers,
        )
        if r.state == ST.StateLeader:
            st.progress = {
                pid: (pr.match, pr.next, pr.state.name) for pid, pr in r.tracker.progress.items()
            }
        return st
