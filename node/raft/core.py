"""`RaftCore`: the Raft protocol as a pure state machine (etcd-raft's raft.go, in Python).

Inputs are `step(message)` and `tick()`; outputs accumulate in `msgs` (may leave at once),
`msgs_after_append` (only after the driver made the log/hard state durable, thesis §3.8),
`read_states` and the log's unstable tail. `RawNode` packages them into `Ready` batches.
Roles dispatch through swapped callables (`_step`, `_tick`), as etcd's becomeFollower does.
"""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING

from node.raft.confchange import apply_change
from node.raft.errors import (
    CompactedError,
    ProposalDropped,
    SnapshotTemporarilyUnavailable,
    UnavailableError,
)
from node.raft.log import RaftLog
from node.raft.logger import DiscardLogger
from node.raft.members import members
from node.raft.messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
)
from node.raft.quorum import VoteResult
from node.raft.read_only import ReadOnly
from node.raft.state import ReadState, SoftState, StateType
from node.raft.status import Counters
from node.raft.storage import entry_size
from node.raft.tracker import Progress, ProgressState, ProgressTracker

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.raft.config import Config
    from node.raft.logger import RaftLogger
    from node.raft.storage import Storage

# The enums' members, looked up cheaply (node.raft.members: ~30 ns instead of ~90 each).
MT = members(MessageType)
ST = members(StateType)
PS = members(ProgressState)
ET = members(EntryType)
CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Vote context marking a campaign forced by leader transfer: it bypasses the leader lease."""

# Responses that promise durability of the sender's log or vote: held back until persisted.
_AFTER_PERSIST = frozenset({MT.MsgAppResp, MT.MsgVoteResp, MT.MsgPreVoteResp})
# Votes and their answers name their own term (a pre-vote's is the one it campaigns for).
_CARRY_OWN_TERM = frozenset({MT.MsgVote, MT.MsgVoteResp, MT.MsgPreVote, MT.MsgPreVoteResp})
_TERMLESS = frozenset({MT.MsgProp, MT.MsgReadIndex})
_VOTE_REQUESTS = frozenset({MT.MsgVote, MT.MsgPreVote})
# What a leader handles without a peer's progress: its own inputs and forwarded requests.
_LEADER_INPUTS = frozenset({MT.MsgProp, MT.MsgBeat, MT.MsgCheckQuorum, MT.MsgReadIndex})
# What only a leader sends; at a given term only from the one leader of that term.
_FROM_LEADER = frozenset({MT.MsgApp, MT.MsgHeartbeat, MT.MsgSnap})
LOCAL_MSGS = frozenset(
    {MT.MsgHup, MT.MsgBeat, MT.MsgUnreachable, MT.MsgSnapStatus, MT.MsgCheckQuorum}
)


def vote_resp_type(t: MessageType) -> MessageType:
    return MT.MsgVoteResp if t == MT.MsgVote else MT.MsgPreVoteResp


# The role names in etcd-raft's "became <role> at term <t>" log lines.
_ROLE_NAMES = {
    ST.StateFollower: "follower",
    ST.StateCandidate: "candidate",
    ST.StatePreCandidate: "pre-candidate",
    ST.StateLeader: "leader",
}


class _Campaign:
    PRE_ELECTION = "CampaignPreElection"
    ELECTION = "CampaignElection"
    TRANSFER = "CampaignTransfer"


class RaftCore:
    """One member's Raft state. Not thread-safe; never performs I/O or reads a clock."""

    def __init__(self, cfg: Config, storage: Storage) -> None:
        cfg.validate()
        self.id = cfg.id
        self.logger: RaftLogger = cfg.logger if cfg.logger is not None else DiscardLogger()
        self.rng = cfg.rng if cfg.rng is not None else random.Random(cfg.id)
        self.raft_log = RaftLog(storage, self.logger)
        hs, cs = storage.initial_state()
        if cfg.conf_state is not None:
            # The driver's state machine holds the configuration at its applied index, which
            # may be newer than the snapshot's (conf changes applied after it).
            cs = cfg.conf_state
        elif not cs.voters:
            if not cfg.peers:
                raise ValueError("no voters: storage has no ConfState and Config.peers is empty")
            cs = ConfState(voters=tuple(cfg.peers), learners=tuple(cfg.learners))
        self.max_msg_size = cfg.max_size_per_msg
        self.tracker = ProgressTracker(cs, cfg.max_inflight_msgs, cfg.max_inflight_bytes)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = ST.StateFollower
        self.lead_transferee = NONE
        self.check_quorum = cfg.check_quorum
        self.pre_vote = cfg.pre_vote
        self.heartbeat_timeout = cfg.heartbeat_tick
        self.election_timeout = cfg.election_tick
        self.randomized_election_timeout = cfg.election_tick
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.msgs: list[Message] = []
        self.msgs_after_append: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self.counters = Counters()
        self._last_known_lead = NONE
        # Leader: the index of the last conf change it appended; no other may be appended
        # until that one is applied (one change at a time, etcd-raft's pendingConfIndex).
        self.pending_conf_index = 0
        # Indexes of EntryConfChange entries handed to the driver for applying, oldest first;
        # `apply_conf_change` pops one, so the guard lifts as soon as the change is applied.
        self._conf_applying: deque[int] = deque()
        self._conf_applied_index = 0
        # Leader: new entries (or a commit advance) to broadcast when the Ready is built, so a
        # burst of proposals leaves as one MsgApp per follower instead of one per proposal.
        self._pending_append = False
        self._pending_commit_bcast = False
        self._pending_read_bcast = False
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        if not hs.is_empty():
            self.load_state(hs)
        if cfg.applied > self.raft_log.applied:
            # A restarted member must not re-apply what its state machine already holds.
            self.raft_log.applied_to(cfg.applied)
        self.become_follower(self.term, NONE)
        self.logger.info(
            f"newRaft {self.id} [peers: [{','.join(map(str, self.tracker.voters))}], "
            f"term: {self.term}, commit: {self.raft_log.committed}, "
            f"applied: {self.raft_log.applied}, lastindex: {self.raft_log.last_index()}, "
            f"lastterm: {self.raft_log.last_term()}]"
        )

    # -- state snapshots -------------------------------------------------------------------
    def soft_state(self) -> SoftState:
        return SoftState(lead=self.lead, role=self.state)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    def load_state(self, hs: HardState) -> None:
        if hs.commit < self.raft_log.committed or hs.commit > self.raft_log.last_index():
            raise AssertionError(
                f"{self.id} state.commit {hs.commit} is out of range "
                f"[{self.raft_log.committed}, {self.raft_log.last_index()}]"
            )
        self.raft_log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        """Only voters campaign: not a learner, nor a member outside the configuration
        (a removed member must not disrupt the cluster)."""
        pr = self.tracker.progress.get(self.id)
        return pr is not None and not pr.is_learner

    def is_learner(self) -> bool:
        pr = self.tracker.progress.get(self.id)
        return pr is not None and pr.is_learner

    # -- sending ---------------------------------------------------------------------------
    def send(self, m: Message) -> None:
        """Queue `m`; durability-promising responses wait in `msgs_after_append`."""
        m.frm = self.id
        t = m.type
        if t in _CARRY_OWN_TERM:
            if m.term == 0:
                raise AssertionError(f"term should be set when sending {t.name}")
        elif t not in _TERMLESS:
            # Proposals and forwarded reads carry no term: they are "local" to the leader.
            m.term = self.term
        if t not in _AFTER_PERSIST:
            self.msgs.append(m)
            return
        out = self.msgs_after_append
        if t == MT.MsgAppResp and not m.reject and out:
            # Acks are cumulative: a newer ack to the same member at the same term
            # supersedes an unsent older one (one response per Ready, not per MsgApp).
            last = out[-1]
            if (
                last.type == MT.MsgAppResp
                and last.to == m.to
                and last.term == m.term
                and not last.reject
                and last.index <= m.index
            ):
                last.index = m.index
                return
        out.append(m)

    def flush(self) -> None:
        """Emit the broadcasts deferred while stepping (called when a Ready is assembled)."""
        if not (self._pending_append or self._pending_commit_bcast or self._pending_read_bcast):
            return
        if self.state != ST.StateLeader:
            self._pending_append = self._pending_commit_bcast = self._pending_read_bcast = False
            return
        if self._pending_append or self._pending_commit_bcast:
            send_if_empty = self._pending_commit_bcast
            self._pending_append = self._pending_commit_bcast = False
            for to in self.tracker.ids():
                if to != self.id:
                    self.maybe_send_append(to, send_if_empty)
        if self._pending_read_bcast:
            self._pending_read_bcast = False
            self.bcast_heartbeat()

    def send_append(self, to: int) -> None:
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send `to` the entries after its `next` (batched up to max_size_per_msg).

        Falls back to a snapshot when the entries were compacted. Returns whether a message
        was sent. Respects the follower's flow-control state (probe / replicate window).
        """
        pr = self.tracker.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        log = self.raft_log
        if not send_if_empty and prev_index == log.last_index():
            return False  # nothing new (the common answer to each ack), and nothing to say
        try:
            prev_term = log.term(prev_index)
            ents: list[Entry] = []
            # A throttled replicate stream still sends empty appends so a lost window recovers.
            if pr.state != PS.StateReplicate or not pr.inflights.full():
                ents = log.entries(pr.next, self.max_msg_size)
        except (CompactedError, UnavailableError):
            return self.maybe_send_snapshot(to)
        if not ents and not send_if_empty:
            return False
        self.send(
            Message(
                type=MT.MsgApp,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=ents,
                commit=log.committed,
            )
        )
        if ents:
            pr.sent_entries(len(ents), sum(map(entry_size, ents)))
        return True

    def maybe_send_snapshot(self, to: int) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            self.logger.debug(f"ignore sending snapshot to {to} since it is not recently active")
            return False
        try:
            snap = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailable:
            self.logger.debug(f"{self.id} failed to send snapshot to {to}: temporarily unavailable")
            return False
        meta = snap.metadata
        self.logger.info(
            f"{self.id} [firstindex: {self.raft_log.first_index()}, "
            f"commit: {self.raft_log.committed}] sent snapshot[index: {meta.index}, "
            f"term: {meta.term}] to {to}"
        )
        pr.become_snapshot(meta.index)
        self.counters.snapshots_sent += 1
        self.send(Message(type=MT.MsgSnap, to=to, snapshot=snap))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        # A follower may not have the leader's whole log yet: never tell it a commit index
        # beyond what it has acknowledged (it would have to commit entries it does not hold).
        commit = min(self.tracker.progress[to].match, self.raft_log.committed)
        self.send(Message(type=MT.MsgHeartbeat, to=to, commit=commit, context=ctx))

    def bcast_append(self) -> None:
        """Schedule an append (possibly empty: it carries the commit index) to every follower."""
        self._pending_append = True
        self._pending_commit_bcast = True

    def bcast_heartbeat(self) -> None:
        ctx = self.read_only.last_pending_request_ctx()
        n = 0
        for to in self.tracker.ids():  # learners too: they must not time out waiting
            if to != self.id:
                self.send_heartbeat(to, ctx)
                n += 1
        self.counters.heartbeats_sent += n

    # -- commit ----------------------------------------------------------------------------
    def maybe_commit(self) -> bool:
        """Commit the largest index a majority durably holds, if it is of the current term."""
        return self.raft_log.maybe_commit(self.tracker.committed(), self.term)

    def append_entry(self, ents: list[Entry]) -> None:
        """Leader: stamp `ents` with term and index, append, and self-ack once durable."""
        li = self.raft_log.last_index()
        term = self.term
        for i, e in enumerate(ents, li + 1):
            e.term = term
            e.index = i
        li = self.raft_log.append(ents)
        # The leader sends itself no MsgApp; its own ack leaves only after the fsync (etcd's
        # msgsAfterAppend), so its log counts toward a quorum only once it is durable.
        self.send(Message(type=MT.MsgAppResp, to=self.id, index=li))

    # -- role changes ----------------------------------------------------------------------
    def _set_lead(self, lead: int) -> None:
        self.lead = lead
        if lead != NONE and lead != self._last_known_lead:
            self._last_known_lead = lead
            self.counters.leader_changes += 1

    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.tracker.reset_votes()
        nxt = self.raft_log.last_index() + 1
        for pr in self.tracker.progress.values():
            pr.match = 0
            pr.next = nxt
            pr.state = PS.StateProbe
            pr.pending_snapshot = 0
            pr.recent_active = False
            pr.msg_app_flow_paused = False
            pr.inflights.reset()
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []
        self._pending_append = self._pending_commit_bcast = self._pending_read_bcast = False

    def _enter(
        self, state: StateType, step: Callable[[Message], None], tick: Callable[[], None]
    ) -> None:
        """Take on a role: its step and tick functions, then the log line etcd-raft prints.

        Every `become_*` calls it after `reset` and the role's own state, so the member is
        fully in its new role when the transition is logged.
        """
        self._step = step
        self._tick = tick
        self.state = state
        self.logger.info(f"{self.id} became {_ROLE_NAMES[state]} at term {self.term}")

    def become_follower(self, term: int, lead: int) -> None:
        self.reset(term)
        self._set_lead(lead)
        self._enter(ST.StateFollower, self._step_follower, self._tick_election)

    def become_candidate(self) -> None:
        if self.state == ST.StateLeader:
            raise AssertionError("invalid transition [leader -> candidate]")
        self.reset(self.term + 1)
        self.vote = self.id
        self._enter(ST.StateCandidate, self._step_candidate, self._tick_election)

    def become_pre_candidate(self) -> None:
        if self.state == ST.StateLeader:
            raise AssertionError("invalid transition [leader -> pre-candidate]")
        # PreVote: neither the term nor the vote change, so a failed pre-campaign by a
        # partitioned member leaves the cluster's term alone (thesis §9.6).
        self.tracker.reset_votes()
        self.lead = NONE
        self._enter(ST.StatePreCandidate, self._step_candidate, self._tick_election)

    def become_leader(self) -> None:
        if self.state == ST.StateFollower:
            raise AssertionError("invalid transition [follower -> leader]")
        self.reset(self.term)
        self._set_lead(self.id)
        me = self.tracker.progress[self.id]
        me.become_replicate()
        me.recent_active = True
        self._enter(ST.StateLeader, self._step_leader, self._tick_heartbeat)
        # Raft §5.4.2 / §8: an empty entry of the new term lets earlier entries commit and lets
        # read index start once it is committed.
        # Any conf change in our log may still be unapplied: none may be proposed before all
        # of it is applied (etcd-raft: the last index before the empty entry).
        self.pending_conf_index = self.raft_log.last_index()
        self.append_entry([Entry(term=0, index=0)])

    # -- ticks -----------------------------------------------------------------------------
    def tick(self) -> None:
        self._tick()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(type=MT.MsgHup, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            removed = self.state == ST.StateLeader and not self.promotable()
            # A removed leader stays until it handed over (see _hand_over), quorum or not.
            if self.check_quorum and not removed:
                self.step(Message(type=MT.MsgCheckQuorum, frm=self.id))
            # A transfer that did not finish within an election timeout is abandoned; a
            # removed leader tries again, with whichever voter is now the most up to date.
            if self.state == ST.StateLeader and self.lead_transferee != NONE:
                self.abort_leader_transfer()
                if removed:
                    self._hand_over()
        if self.state != ST.StateLeader:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(type=MT.MsgBeat, frm=self.id))

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def reset_randomized_election_timeout(self) -> None:
        """Raft §5.2: a timeout drawn from [election_tick, 2*election_tick) breaks split votes."""
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # -- elections -------------------------------------------------------------------------
    def hup(self, kind: str) -> None:
        if self.state == ST.StateLeader:
            self.logger.debug(f"{self.id} ignoring MsgHup because already leader")
            return
        if not self.promotable():
            self.logger.warning(f"{self.id} is unpromotable and can not campaign")
            return
        n = self._committed_unapplied_conf_changes()
        if n:
            # Our configuration is older than one the cluster already committed: counting a
            # majority of it could miss a majority of the newer one (etcd-raft's hup check).
            self.logger.warning(
                f"{self.id} cannot campaign at term {self.term} since there are still {n} "
                f"pending configuration changes to apply"
            )
            return
        self.logger.info(f"{self.id} is starting a new election at term {self.term}")
        self.campaign(kind)

    def campaign(self, kind: str) -> None:
        if kind == _Campaign.PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = MT.MsgPreVote
            term = self.term + 1  # the term we would campaign at; ours stays unchanged
            self.counters.pre_votes_started += 1
        else:
            self.become_candidate()
            vote_msg = MT.MsgVote
            term = self.term
            self.counters.elections_started += 1
        log = self.raft_log
        last_index, last_term = log.last_index(), log.last_term()
        ctx = CAMPAIGN_TRANSFER if kind == _Campaign.TRANSFER else b""
        for to in self.tracker.voters:
            if to == self.id:
                # Our own vote counts only once it is durable: it comes back through advance().
                self.send(Message(type=vote_resp_type(vote_msg), to=to, term=term))
                continue
            self.logger.info(
                f"{self.id} [logterm: {last_term}, index: {last_index}] sent "
                f"{vote_msg.name} request to {to} at term {self.term}"
            )
            self.send(
                Message(
                    type=vote_msg,
                    to=to,
                    term=term,
                    index=last_index,
                    log_term=last_term,
                    context=ctx,
                )
            )

    def poll(self, frm: int, t: MessageType, granted: bool) -> tuple[int, int, VoteResult]:
        if granted:
            self.logger.info(f"{self.id} received {t.name} from {frm} at term {self.term}")
        else:
            self.logger.info(
                f"{self.id} received {t.name} rejection from {frm} at term {self.term}"
            )
        self.tracker.record_vote(frm, granted)
        return self.tracker.tally_votes()

    # -- the step function -----------------------------------------------------------------
    def step(self, m: Message) -> None:
        """Feed one message; raises `ProposalDropped` for a proposal/read that cannot proceed."""
        if m.term == 0:
            pass  # local message (or a forwarded proposal / read index)
        elif m.term > self.term:
            if m.type in _VOTE_REQUESTS:
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # Thesis §4.2.3: a member that heard from a live leader within the minimum
                    # election timeout ignores vote requests (protects against a disruptive
                    # rejoining member).
                    self.logger.info(
                        f"{self.id} [logterm: {self.raft_log.last_term()}, index: "
                        f"{self.raft_log.last_index()}, vote: {self.vote}] ignored "
                        f"{m.type.name} from {m.frm} [logterm: {m.log_term}, index: {m.index}] "
                        f"at term {self.term}: lease is not expired (remaining ticks: "
                        f"{self.election_timeout - self.election_elapsed})"
                    )
                    return
            if m.type == MT.MsgPreVote:
                pass  # never change our term in response to a PreVote
            elif m.type == MT.MsgPreVoteResp and not m.reject:
                # A granted pre-vote carries the future term; the term changes only if the
                # pre-campaign wins and a real campaign starts.
                pass
            else:
                self.logger.info(
                    f"{self.id} [term: {self.term}] received a {m.type.name} message with "
                    f"higher term from {m.frm} [term: {m.term}]"
                )
                if m.type in _FROM_LEADER:
                    self.become_follower(m.term, m.frm)
                else:
                    self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.MsgHeartbeat, MT.MsgApp):
                # A stale leader (e.g. back from a partition) learns the new term from this
                # response and steps down; otherwise, with CheckQuorum/PreVote, it could keep
                # disrupting nobody and never learn it lost leadership.
                self.send(Message(type=MT.MsgAppResp, to=m.frm))
            elif m.type == MT.MsgPreVote:
                self.logger.info(
                    f"{self.id} [logterm: {self.raft_log.last_term()}, index: "
                    f"{self.raft_log.last_index()}, vote: {self.vote}] rejected "
                    f"{m.type.name} from {m.frm} [logterm: {m.log_term}, index: {m.index}] "
                    f"at term {self.term}"
                )
                self.send(Message(type=MT.MsgPreVoteResp, to=m.frm, term=self.term, reject=True))
            else:
                self.logger.debug(
                    f"{self.id} [term: {self.term}] ignored a {m.type.name} message with "
                    f"lower term from {m.frm} [term: {m.term}]"
                )
                self.counters.messages_dropped += 1
            return

        t = m.type
        if t in _FROM_LEADER and (m.term == 0 or (self.lead != NONE and m.frm != self.lead)):
            # Raft §5.2 (Election Safety): a term has at most one leader, and this member
            # knows which one, so an append, heartbeat or snapshot at this term from anyone
            # else is not from a leader. etcd-io/raft trusts its transport here and lets
            # such a message make its sender the leader; this member's peer port may be
            # reached by a process that is no member (issue 18, finding 3: one forged
            # MsgApp committed a put the real leader never wrote). Ignoring it costs an
            # honest cluster nothing. Term 0 is "local" to the core, never a leader's term.
            self.logger.warning(
                f"{self.id} [term: {self.term}] ignored a {t.name} message from {m.frm} "
                f"[term: {m.term}]: the leader at term {self.term} is {self.lead}"
            )
            self.counters.messages_dropped += 1
            return
        if t == MT.MsgHup:
            self.hup(_Campaign.PRE_ELECTION if self.pre_vote else _Campaign.ELECTION)
        elif t in _VOTE_REQUESTS:
            # Raft §5.2: one vote per term (we may repeat a vote for the same candidate);
            # a PreVote for a future term may be granted even if we voted in this one.
            can_vote = (
                self.vote == m.frm
                or (self.vote == NONE and self.lead == NONE)
                or (t == MT.MsgPreVote and m.term > self.term)
            )
            # Raft §5.4.1: only for a candidate whose log is at least as up-to-date as ours.
            if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
                self.logger.info(
                    f"{self.id} [logterm: {self.raft_log.last_term()}, index: "
                    f"{self.raft_log.last_index()}, vote: {self.vote}] cast {t.name} for "
                    f"{m.frm} [logterm: {m.log_term}, index: {m.index}] at term {self.term}"
                )
                # The grant is in msgs_after_append: it leaves only once the vote is durable.
                self.send(Message(type=vote_resp_type(t), to=m.frm, term=m.term))
                if t == MT.MsgVote:
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                self.logger.info(
                    f"{self.id} [logterm: {self.raft_log.last_term()}, index: "
                    f"{self.raft_log.last_index()}, vote: {self.vote}] rejected {t.name} "
                    f"from {m.frm} [logterm: {m.log_term}, index: {m.index}] at term "
                    f"{self.term}"
                )
                self.send(Message(type=vote_resp_type(t), to=m.frm, term=self.term, reject=True))
        else:
            self._step(m)

    # -- leader ----------------------------------------------------------------------------
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t in _LEADER_INPUTS:
            self._step_leader_input(m)
            return
        pr = self.tracker.progress.get(m.frm)
        if pr is None:
            self.logger.debug(f"{self.id} no progress available for {m.frm}")
            self.counters.messages_dropped += 1
            return
        if t == MT.MsgAppResp:
            self._handle_append_response(m, pr)
        elif t == MT.MsgHeartbeatResp:
            pr.recent_active = True
            pr.msg_app_flow_paused = False
            # A full window whose appends were lost would stall forever: free one slot so an
            # append can be retried; heartbeats are the retry timer.
            if pr.state == PS.StateReplicate and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.raft_log.last_index() or pr.match < self.raft_log.committed:
                self.send_append(m.frm)
            if not m.context:
                return
            acks = self.read_only.recv_ack(m.frm, m.context)
            if acks is None:
                return
            if sum(1 for v in self.tracker.voters if v in acks) < len(self.tracker.voters) // 2 + 1:
                return
            for rs in self.read_only.advance(m.context):
                self._respond_read_index(rs.req, rs.index)
        elif t == MT.MsgSnapStatus:
            if pr.state != PS.StateSnapshot:
                return
            if not m.reject:
                pr.become_probe()
                self.logger.debug(f"{self.id} snapshot succeeded, resumed sending to {m.frm}")
            else:
                # The follower did not get it: send a (possibly newer) snapshot on next contact.
                pr.pending_snapshot = 0
                pr.become_probe()
                self.logger.debug(f"{self.id} snapshot failed, resumed sending to {m.frm}")
            # Wait for a heartbeat response before probing (the transport was just busy).
            pr.msg_app_flow_paused = True
        elif t == MT.MsgUnreachable:
            # Optimistic pipelining to an unreachable member loses everything: probe instead.
            if pr.state == PS.StateReplicate:
                pr.become_probe()
        elif t == MT.MsgTransferLeader:
            self._handle_transfer_leader(m)

    def _step_leader_input(self, m: Message) -> None:
        """A leader's own inputs and forwarded requests: no peer's progress involved."""
        t = m.type
        if t == MT.MsgProp:
            if not m.entries:
                raise AssertionError(f"{self.id} stepped empty MsgProp")
            if self.id not in self.tracker.progress:
                self.counters.proposals_dropped += 1
                raise ProposalDropped("not a voter")
            if self.lead_transferee != NONE:
                self.logger.debug(
                    f"{self.id} [term {self.term}] transfer leadership to "
                    f"{self.lead_transferee} is in progress; dropping proposal"
                )
                self.counters.proposals_dropped += 1
                raise ProposalDropped("leader transfer in progress")
            self._guard_conf_changes(m.entries)
            self.append_entry(m.entries)
            self._pending_append = True
            return
        if t == MT.MsgBeat:
            self.bcast_heartbeat()
            return
        if t == MT.MsgCheckQuorum:
            if not self.tracker.quorum_active():
                self.logger.warning(
                    f"{self.id} stepped down to follower since quorum is not active"
                )
                self.become_follower(self.term, NONE)
            # Everyone (but us) must prove liveness again during the next election timeout.
            for pid, other in self.tracker.progress.items():
                if pid != self.id:
                    other.recent_active = False
            return
        if t == MT.MsgReadIndex:
            if not self.committed_entry_in_current_term():
                # Thesis §6.4: a new leader does not know the commit index until an entry of
                # its own term commits; reads wait until then. (Also for a single member: its
                # persisted commit index may lag what it acknowledged before a restart.)
                self.pending_read_index_messages.append(m)
            elif self.tracker.is_singleton():
                self._respond_read_index(m, self.raft_log.committed)
            else:
                self.send_msg_read_index_response(m)
            return

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            self.logger.debug(
                f"{self.id} received MsgAppResp(rejected, hint: (index {m.reject_hint}, "
                f"term {m.log_term})) from {m.frm} for index {m.index}"
            )
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Fast backtracking: skip every entry of a term the follower cannot match.
                next_probe, _ = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == PS.StateReplicate:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == PS.StateProbe:
            pr.become_replicate()
        elif pr.state == PS.StateSnapshot and pr.match + 1 >= self.raft_log.first_index():
            # The follower caught up past the compaction point (snapshot applied).
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == PS.StateReplicate:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            self.release_pending_read_index_messages()
            self.bcast_append()
        elif old_paused and m.frm != self.id:
            self.send_append(m.frm)
        if m.frm != self.id:
            # The window may have opened for several messages at once.
            while self.maybe_send_append(m.frm, False):
                pass
            if m.frm == self.lead_transferee and pr.match == self.raft_log.last_index():
                if not self.promotable():
                    self._hand_over()  # removed: MsgTimeoutNow, then step down
                    return
                self.logger.info(
                    f"{self.id} sent MsgTimeoutNow to {m.frm} after received MsgAppResp"
                )
                self.send_timeout_now(m.frm)

    def _guard_conf_changes(self, ents: list[Entry]) -> None:
        """One membership change at a time: a conf change proposed while another is unapplied
        becomes an empty normal entry (etcd-raft does the same; the proposer times out)."""
        li = self.raft_log.last_index()
        for i, e in enumerate(ents):
            if e.type != ET.EntryConfChange:
                continue
            applied = max(self.raft_log.applied, self._conf_applied_index)
            if self.pending_conf_index > applied:
                self.logger.info(
                    f"{self.id} ignoring conf change {_describe_cc(e.data)}: possible unapplied "
                    f"conf change at index {self.pending_conf_index} (applied to {applied})"
                )
                ents[i] = Entry(term=0, index=0)
            else:
                self.pending_conf_index = li + i + 1

    def _handle_transfer_leader(self, m: Message) -> None:
        transferee = m.frm
        if self.tracker.progress[transferee].is_learner:
            self.logger.debug(f"{self.id} is learner. Ignored transferring leadership")
            return
        last = self.lead_transferee
        if last != NONE:
            if last == transferee:
                self.logger.info(
                    f"{self.id} [term {self.term}] transfer leadership to {transferee} is in "
                    f"progress, ignores request to same node {transferee}"
                )
                return
            self.abort_leader_transfer()
            self.logger.info(
                f"{self.id} [term {self.term}] abort previous transferring leadership to {last}"
            )
        if transferee == self.id:
            self.logger.debug(f"{self.id} is already leader. Ignored transferring leadership")
            return
        self.logger.info(
            f"{self.id} [term {self.term}] starts to transfer leadership to {transferee}"
        )
        # The transfer must finish within one election timeout or it is aborted (§3.10).
        self.election_elapsed = 0
        self.lead_transferee = transferee
        pr = self.tracker.progress[transferee]
        if pr.match == self.raft_log.last_index():
            self.send_timeout_now(transferee)
            self.logger.info(
                f"{self.id} sends MsgTimeoutNow to {transferee} immediately as "
                f"{transferee} already has up-to-date log"
            )
        else:
            self.send_append(transferee)

    def send_timeout_now(self, to: int) -> None:
        self.counters.leader_transfers += 1
        self.send(Message(type=MT.MsgTimeoutNow, to=to))

    def committed_entry_in_current_term(self) -> bool:
        return self.raft_log.zero_term_on_err(self.raft_log.committed) == self.term

    def release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self.committed_entry_in_current_term():
            return
        msgs, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in msgs:
            if self.tracker.is_singleton():
                self._respond_read_index(m, self.raft_log.committed)
            else:
                self.send_msg_read_index_response(m)

    def send_msg_read_index_response(self, m: Message) -> None:
        """Queue a read at the current commit index until a heartbeat round confirms us."""
        self.read_only.add_request(self.raft_log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self._pending_read_bcast = True  # one heartbeat round per Ready serves the whole batch

    def _respond_read_index(self, req: Message, index: int) -> None:
        if req.frm == NONE or req.frm == self.id:
            self.read_states.append(ReadState(index=index, request_ctx=req.context))
        else:
            self.send(
                Message(type=MT.MsgReadIndexResp, to=req.frm, index=index, context=req.context)
            )

    # -- candidate -------------------------------------------------------------------------
    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MT.MsgPreVoteResp if self.state == ST.StatePreCandidate else MT.MsgVoteResp
        if t == MT.MsgProp:
            self.logger.info(f"{self.id} no leader at term {self.term}; dropping proposal")
            self.counters.proposals_dropped += 1
            raise ProposalDropped("no leader")
        if t == MT.MsgReadIndex:
            self.counters.read_index_failed += 1
            raise ProposalDropped("no leader")
        if t == MT.MsgApp:
            self.become_follower(m.term, m.frm)  # always m.term == self.term here
            self.handle_append_entries(m)
        elif t == MT.MsgHeartbeat:
            self.become_follower(m.term, m.frm)
            self.handle_heartbeat(m)
        elif t == MT.MsgSnap:
            self.become_follower(m.term, m.frm)
            self.handle_snapshot(m)
        elif t == my_resp:
            granted, rejected, res = self.poll(m.frm, t, not m.reject)
            self.logger.info(
                f"{self.id} has received {granted} {t.name} votes and {rejected} vote rejections"
            )
            if res == VoteResult.VoteWon:
                if self.state == ST.StatePreCandidate:
                    self.campaign(_Campaign.ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res == VoteResult.VoteLost:
                # A pre-candidate returns to follower at its old term.
                self.become_follower(self.term, NONE)
        elif t == MT.MsgTimeoutNow:
            self.logger.debug(f"{self.id} ignored MsgTimeoutNow from {m.frm} as candidate")

    # -- follower --------------------------------------------------------------------------
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in _FROM_LEADER:
            # Only the leader of this term sends these: hearing one resets the election timer.
            self.election_elapsed = 0
            self._set_lead(m.frm)
            _FOLLOWER_HANDLERS[t](self, m)
        elif t == MT.MsgProp:
            if self.lead == NONE:
                self.logger.info(f"{self.id} no leader at term {self.term}; dropping proposal")
                self.counters.proposals_dropped += 1
                raise ProposalDropped("no leader")
            m.to = self.lead
            self.send(m)
        elif t == MT.MsgTransferLeader:
            if self.lead == NONE:
                self.logger.info(
                    f"{self.id} no leader at term {self.term}; dropping leader transfer msg"
                )
                return
            m.to = self.lead
            self.send(m)
        elif t == MT.MsgTimeoutNow:
            if not self.promotable():
                # A learner (or a member outside the configuration) never campaigns.
                self.logger.info(
                    f"{self.id} received MsgTimeoutNow from {m.frm} but is not promotable"
                )
                return
            self.logger.info(
                f"{self.id} [term {self.term}] received MsgTimeoutNow from {m.frm} and starts "
                f"an election to get leadership"
            )
            # Leader transfer skips PreVote: the old leader asked for this election.
            self.hup(_Campaign.TRANSFER)
        elif t == MT.MsgReadIndex:
            if self.lead == NONE:
                self.logger.info(
                    f"{self.id} no leader at term {self.term}; dropping index reading msg"
                )
                self.counters.read_index_failed += 1
                raise ProposalDropped("no leader")
            m.to = self.lead
            self.send(m)
        elif t == MT.MsgReadIndexResp:
            self.read_states.append(ReadState(index=m.index, request_ctx=m.context))

    def handle_append_entries(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            # Everything up to our commit index is known to match (committed entries never
            # change), so acknowledge that much.
            self.send(Message(type=MT.MsgAppResp, to=m.frm, index=log.committed))
            return
        last_new, ok = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if ok:
            self.send(Message(type=MT.MsgAppResp, to=m.frm, index=last_new))
            return
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self.logger.debug(
            f"{self.id} [logterm: {log.zero_term_on_err(m.index)}, index: {m.index}] rejected "
            f"MsgApp [logterm: {m.log_term}, index: {m.index}] from {m.frm}"
        )
        self.counters.append_rejections += 1
        self.send(
            Message(
                type=MT.MsgAppResp,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(m.commit)
        self.send(Message(type=MT.MsgHeartbeatResp, to=m.frm, context=m.context))

    def handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot if m.snapshot is not None else Snapshot()
        sindex, sterm = snap.metadata.index, snap.metadata.term
        if self.restore(snap):
            self.logger.info(
                f"{self.id} [commit: {self.raft_log.committed}] restored snapshot "
                f"[index: {sindex}, term: {sterm}]"
            )
            self.send(Message(type=MT.MsgAppResp, to=m.frm, index=self.raft_log.last_index()))
        else:
            self.logger.info(
                f"{self.id} [commit: {self.raft_log.committed}] ignored snapshot "
                f"[index: {sindex}, term: {sterm}]"
            )
            self.send(Message(type=MT.MsgAppResp, to=m.frm, index=self.raft_log.committed))

    def restore(self, snap: Snapshot) -> bool:
        """Install `snap` if it moves us forward; False if we already have what it covers."""
        meta = snap.metadata
        if meta.index <= self.raft_log.committed:
            return False
        if self.state != ST.StateFollower:
            # Defensive (etcd does the same): only followers install snapshots.
            self.logger.warning(
                f"{self.id} attempted to restore snapshot as {self.state.name}; should never happen"
            )
            self.become_follower(self.term + 1, NONE)
            return False
        cs = meta.conf_state
        if cs.voters and self.id not in cs.voters and self.id not in cs.learners:
            self.logger.warning(
                f"{self.id} attempted to restore snapshot but it is not in the ConfState "
                f"{meta.conf_state}; should never happen"
            )
            return False
        if self.raft_log.match_term(meta.index, meta.term):
            # We already hold the snapshot's last entry: just fast-forward the commit index.
            self.logger.info(
                f"{self.id} [commit: {self.raft_log.committed}, lastindex: "
                f"{self.raft_log.last_index()}, lastterm: {self.raft_log.last_term()}] fast-"
                f"forwarded commit to snapshot [index: {meta.index}, term: {meta.term}]"
            )
            self.raft_log.commit_to(meta.index)
            return False
        self.raft_log.restore(snap)
        if cs.voters:
            # Voters and learners both come from the snapshot: the configuration in force at
            # its index, which may differ from ours by any number of changes.
            self.tracker = ProgressTracker(
                cs, self.tracker.max_inflight, self.tracker.max_inflight_bytes
            )
            self.logger.info(f"{self.id} switched to configuration {_describe_conf(cs)}")
        return True

    # -- membership changes ------------------------------------------------------------------
    def note_applying(self, ents: list[Entry]) -> None:
        """The driver got `ents` to apply: remember where its conf changes are."""
        conf = ET.EntryConfChange
        for e in ents:
            if e.type == conf:
                self._conf_applying.append(e.index)

    def note_applied(self, index: int) -> None:
        q = self._conf_applying
        while q and q[0] <= index:
            q.popleft()

    def _committed_unapplied_conf_changes(self) -> int:
        log = self.raft_log
        lo = max(log.applied, self._conf_applied_index) + 1
        if lo > log.committed:
            return 0
        try:
            ents = log.slice(lo, log.committed + 1)
        except CompactedError:
            return 0  # a snapshot covers them: its configuration is in force
        return sum(1 for e in ents if e.type == ET.EntryConfChange)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change (etcd-raft's applyConfChange + switchToConfig, v1).

        The configuration takes effect when applied, as in etcd. A refused change (a voter
        "added" as a learner, the last voter removed) changes nothing and logs an error.
        """
        if self._conf_applying:
            self._conf_applied_index = max(self._conf_applied_index, self._conf_applying.popleft())
        err = apply_change(self.tracker, cc, self.raft_log.last_index())
        if err is not None:
            self.logger.error(f"{self.id} refused conf change {cc.type.name} {cc.node_id}: {err}")
            return self.tracker.conf_state()
        if cc.node_id == NONE or cc.type == ConfChangeType.ConfChangeUpdateNode:
            return self.tracker.conf_state()
        return self.switch_to_config()

    def switch_to_config(self) -> ConfState:
        cs = self.tracker.conf_state()
        self.logger.info(f"{self.id} switched to configuration {_describe_conf(cs)}")
        if self.state != ST.StateLeader:
            return cs
        # A removed voter may have been the one holding the commit index back. (A leader that
        # removed itself now counts only the new voters, as etcd-raft's does.)
        if self.maybe_commit():
            self.release_pending_read_index_messages()
            self.bcast_append()
        # Probe newcomers at once instead of waiting for the next heartbeat round.
        for to in self.tracker.ids():
            pr = self.tracker.progress[to]
            if to != self.id and pr.match == 0 and pr.state == PS.StateProbe:
                self.maybe_send_append(to, True)
        if self.lead_transferee != NONE and self.lead_transferee not in self.tracker.voters:
            self.logger.info(
                f"{self.id} [term {self.term}] abort transferring leadership to removed "
                f"member {self.lead_transferee}"
            )
            self.abort_leader_transfer()
        if not self.promotable():
            self._hand_over()
        return cs

    def _hand_over(self) -> None:
        """A leader that applied its own removal hands leadership to the best voter, then
        steps down (the issue's "leader transfer away from a member being removed").

        The voter with the highest match gets MsgTimeoutNow once it holds our whole log, so
        the cluster does not wait out an election timeout; then we follow at our term, with
        no leader. Until one catches up we keep leading without counting ourselves (etcd-raft
        keeps a removed leader leading): stepping down earlier could leave voters that have
        not learned the removal is committed, and still count us, unable to elect anyone,
        since we never campaign and refuse a candidate whose log is behind ours.
        """
        last = self.raft_log.last_index()
        best = max(
            ((pr.match, vid) for vid, pr in self.tracker.progress.items() if not pr.is_learner),
            default=None,
        )
        if best is None:
            self.become_follower(self.term, NONE)
            return
        match, to = best
        if match < last:
            self.logger.info(
                f"{self.id} [term {self.term}] removed from the configuration: transfers "
                f"leadership to {to} once it has caught up (match {match}, last {last})"
            )
            self.lead_transferee = to
            self.election_elapsed = 0  # retried after an election timeout (_tick_heartbeat)
            self.send_append(to)
            return
        # Tell everyone the commit index (which covers our removal) while we still lead: once
        # we follow, nobody repeats it until the next leader commits an entry.
        for other in self.tracker.ids():
            self.maybe_send_append(other, True)
        self.logger.info(
            f"{self.id} [term {self.term}] removed from the configuration: sends "
            f"MsgTimeoutNow to {to} (match {last})"
        )
        self.send_timeout_now(to)
        self.logger.info(f"{self.id} [term {self.term}] steps down: no longer a voter")
        self.become_follower(self.term, NONE)


def _describe_conf(cs: ConfState) -> str:
    """etcd-raft's rendering of a configuration: `voters=(1 2 3) learners=(4)`."""
    out = f"voters=({' '.join(map(str, cs.voters))})"
    if cs.learners:
        out += f" learners=({' '.join(map(str, cs.learners))})"
    return out


def _describe_cc(data: bytes) -> str:
    try:
        cc = ConfChange.decode(data)
    except ValueError:
        return "<undecodable>"
    return f"{cc.type.name} {cc.node_id}"


# What a follower does with each message only the current leader sends (etcd-raft's stepFollower).
_FOLLOWER_HANDLERS: dict[MessageType, Callable[[RaftCore, Message], None]] = {
    MT.MsgApp: RaftCore.handle_append_entries,
    MT.MsgHeartbeat: RaftCore.handle_heartbeat,
    MT.MsgSnap: RaftCore.handle_snapshot,
}
