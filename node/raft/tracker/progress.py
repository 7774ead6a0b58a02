"""The leader's view of one follower's replication: match, next and the flow-control state."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from node.raft.members import members

if TYPE_CHECKING:
    from node.raft.tracker.inflights import Inflights


class ProgressState(enum.IntEnum):
    """How the leader currently sends to a follower."""

    StateProbe = 0  # one append per heartbeat interval until the follower's log position is known
    StateReplicate = 1  # optimistic pipelining, bounded by the inflights window
    StateSnapshot = 2  # a snapshot is in flight; appends are paused until it is reported


PS = members(ProgressState)  # cheap member lookups (node.raft.members)


class Progress:
    """Replication progress of one member as seen by the leader.

    Invariant: match < next. Entries (match, next) are in flight or not yet sent.
    `recent_active` is set by any message from the member and cleared at each CheckQuorum.
    A learner (`is_learner`) is replicated to like any follower but never counts toward a
    quorum (commit, votes, CheckQuorum, ReadIndex).
    """

    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "msg_app_flow_paused",
        "next",
        "pending_snapshot",
        "recent_active",
        "state",
    )

    def __init__(
        self, match: int, next_: int, inflights: Inflights, *, is_learner: bool = False
    ) -> None:
        self.match = match
        self.next = next_
        self.state = PS.StateProbe
        self.pending_snapshot = 0  # index of the snapshot in flight (StateSnapshot)
        self.recent_active = False
        # Probe: an append was sent this heartbeat interval; Replicate: the window is full.
        self.msg_app_flow_paused = False
        self.inflights = inflights
        self.is_learner = is_learner

    def _reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Fall back to probing; after a snapshot, resume just past it."""
        if self.state == PS.StateSnapshot:
            pending = self.pending_snapshot
            self._reset_state(PS.StateProbe)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(PS.StateProbe)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(PS.StateReplicate)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(PS.StateSnapshot)
        self.pending_snapshot = snapshot_index
        self.next = snapshot_index + 1

    def sent_entries(self, n: int, nbytes: int) -> None:
        """Account for a MsgApp with `n` entries just sent (optimistically advance next)."""
        if self.state == PS.StateReplicate:
            if n > 0:
                self.next += n
                self.inflights.add(self.next - 1, nbytes)
            self.msg_app_flow_paused = self.inflights.full()
        elif self.state == PS.StateProbe and n > 0:
            self.msg_app_flow_paused = True

    def maybe_update(self, n: int) -> bool:
        """Record an acknowledgement of index `n`; False when it is stale (n <= match)."""
        if n <= self.match:
            return False
        self.match = n
        if self.next < n + 1:
            self.next = n + 1
        self.msg_app_flow_paused = False
        return True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the append at `rejected`; False when the rejection is stale.

        The follower's hint (its last index with term <= the leader's term at `rejected`) lets
        the leader skip a whole conflicting term per round trip (fast backtracking, Raft §5.3).
        """
        if self.state == PS.StateReplicate:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        """Whether the leader must not send an append now (flow control)."""
        if self.state == PS.StateSnapshot:
            return True
        return self.msg_app_flow_paused

    def __repr__(self) -> str:
        return (
            f"Progress(state={self.state.name}, match={self.match}, next={self.next}, "
            f"inflight={self.inflights.count()}, paused={self.msg_app_flow_paused}"
            f"{', learner' if self.is_learner else ''})"
        )
