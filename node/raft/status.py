"""`Status`: a snapshot of a member's Raft state plus plain counters for the exporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.raft.messages import NONE, ConfState

if TYPE_CHECKING:
    from node.raft.state import StateType


@dataclass(slots=True)
class Counters:
    """Monotonic event counters kept by the core (the exporter turns them into metrics)."""

    leader_changes: int = 0  # a different leader became known (etcd_server_leader_changes_seen)
    elections_started: int = 0  # campaigns at a new term
    pre_votes_started: int = 0  # pre-campaigns (PreVote)
    proposals_dropped: int = 0  # proposals refused: no leader, leader transfer, ...
    read_index_failed: int = 0  # read index requests refused (no leader)
    heartbeats_sent: int = 0  # MsgHeartbeat sent by this member as leader
    messages_dropped: int = 0  # messages ignored: stale term, unknown sender
    snapshots_sent: int = 0  # MsgSnap sent to followers behind the first index
    append_rejections: int = 0  # MsgApp this member rejected (log mismatch)
    leader_transfers: int = 0  # MsgTimeoutNow sent


@dataclass(slots=True)
class Status:
    """What `RawNode.status()` reports; cheap enough to build at every metrics scrape."""

    id: int
    term: int
    vote: int
    commit: int
    applied: int
    lead: int
    role: StateType
    conf_state: ConfState
    last_index: int = 0
    first_index: int = 0
    lead_transferee: int = NONE
    is_learner: bool = False  # this member is a learner in its current configuration
    # Leader only: member id -> (match, next, state name), learners included.
    progress: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    leader_changes: int = 0
    elections_started: int = 0
    pre_votes_started: int = 0
    proposals_dropped: int = 0
    read_index_failed: int = 0
    heartbeats_sent: int = 0
    messages_dropped: int = 0
    snapshots_sent: int = 0
    append_rejections: int = 0
    leader_transfers: int = 0
