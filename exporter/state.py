"""The seam between a running member and its scrape-time metrics.

Values a member already holds (Raft status, MVCC statistics, peer byte counters, fault
switches) are not pushed into metrics on every change: the exporter asks for them when
Prometheus scrapes, so they cost nothing on the request path. The member implements
`MemberStateSource`; each method returns a small frozen value built from plain numbers,
grouped by the component that owns the numbers (Raft core, server, MVCC store,
transport, fault injector), so each group can be filled from one place.

Contract for implementers:
- Methods are called on the thread that serves /metrics (the member's event loop), once
  per scrape, in no particular order; they must not block or await.
- Counters (`*_total`, `leader_changes`, ...) must never go down while the process lives.
- Peer ids are Raft member ids (ints); the exporter renders them as etcd does (`%x`).
  Peer id 0 is allowed for bytes received from a sender not yet identified (etcd's
  `From="0"` series).
- A method that raises loses only its own families for that scrape (logged at WARNING).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "RAFT_ROLES",
    "FaultState",
    "MemberStateSource",
    "MvccState",
    "PeerState",
    "RaftState",
    "ServerState",
]

# Roles as raftmon_raft_role{role} spells them (etcd-io/raft's StateType, snake_case).
RAFT_ROLES: tuple[str, ...] = ("follower", "pre_candidate", "candidate", "leader")


@dataclass(frozen=True, slots=True)
class RaftState:
    """What the Raft core knows (RawNode.status() plus its plain counters)."""

    term: int
    lead: int  # member id of the known leader; 0 (raft NONE) when there is none
    role: str  # one of RAFT_ROLES
    commit_index: int  # -> etcd_server_proposals_committed_total (a gauge, as etcd)
    applied_index: int  # -> etcd_server_proposals_applied_total
    is_learner: bool = False
    elections_started: int = 0
    pre_votes_started: int = 0
    proposals_dropped: int = 0
    messages_dropped: int = 0
    # Leader only: follower id -> highest index known replicated there (Progress.match).
    follower_match: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerState:
    """What the server driver knows about itself and the cluster."""

    member_id: int  # -> etcd_server_id{server_id="%x"}
    server_version: str  # etcd API version raftmon answers as, e.g. "3.4.23"
    cluster_version: str  # major.minor, e.g. "3.4" (etcd exposes "3.4", not "3.4.0")
    quota_backend_bytes: int
    proposals_pending: int = 0  # proposals waiting to be applied (etcd: Inc/Dec around each)
    # Plain counters the driver bumps (never decreasing):
    leader_changes_seen: int = 0  # Readys whose soft state carried a new non-zero lead
    proposals_failed: int = 0  # dropped by Raft or timed out before being applied
    heartbeat_send_failures: int = 0  # leader heartbeat later than 2x the heartbeat interval
    slow_applies: int = 0  # applies slower than 100 ms
    slow_read_indexes: int = 0  # read index answers slower than etcd's retry time / stale
    read_indexes_failed: int = 0  # read index requests that failed or timed out
    proposals_sent_again: int = 0  # retries after a leader change (node/mvcc/dedup.py)
    duplicates_skipped: int = 0  # committed entries skipped as a second copy
    snapshot_apply_in_progress: bool = False
    defrag_inflight: bool = False
    # Active alarms as (member id, alarm type): alarm type is "NOSPACE" or "CORRUPT".
    alarms: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class MvccState:
    """MVCC store statistics (node/mvcc): sizes, revisions, operation counts, watches."""

    db_total_size_bytes: int  # physically allocated: page_count*page_size + -wal file
    db_size_in_use_bytes: int  # logically used: (page_count - freelist_count)*page_size
    keys: int
    current_revision: int
    compact_revision: int  # -1 before the first compaction, as etcd
    put_total: int = 0
    range_total: int = 0
    delete_total: int = 0
    txn_total: int = 0
    total_put_size_bytes: int = 0  # sum of key+value sizes of every put seen
    compaction_keys_total: int = 0
    events_total: int = 0  # watch events sent to watchers
    watchers: int = 0
    watch_streams: int = 0
    slow_watchers: int = 0  # unsynced watchers
    pending_events: int = 0  # events queued to watchers, not yet sent


@dataclass(frozen=True, slots=True)
class PeerState:
    """One remote peer as the transport sees it (byte counts are frame bytes on the wire)."""

    active: bool  # a stream to this peer is connected now
    sent_bytes: int = 0
    received_bytes: int = 0
    sent_failures: int = 0  # messages/batches that could not be sent (dropped, write error)
    received_failures: int = 0  # streams from this peer that broke or were rejected
    disconnects: int = 0  # times an active connection to this peer was lost
    snapshot_send_inflight: int = 0  # snapshots being sent to this peer now
    snapshot_receive_inflight: int = 0  # snapshots being received from this peer now


@dataclass(frozen=True, slots=True)
class FaultState:
    """Fault-injection switches currently set on this member (all off by default)."""

    wal_fsync_delay_seconds: float = 0.0
    raft_ticks_paused: bool = False
    peer_delay_seconds: Mapping[int, float] = field(default_factory=dict)
    peer_drop: Mapping[int, bool] = field(default_factory=dict)


@runtime_checkable
class MemberStateSource(Protocol):
    """Scrape-time values of a member; implemented by the member server.

    Each method is one component's view; see the module docstring for the contract.
    """

    def raft_state(self) -> RaftState:
        """The Raft core's status and counters."""
        ...

    def server_state(self) -> ServerState:
        """Identity, versions, quota, pending proposals, alarms, in-progress flags."""
        ...

    def mvcc_state(self) -> MvccState:
        """The store's sizes, revisions, counters and watch statistics."""
        ...

    def peer_states(self) -> Mapping[int, PeerState]:
        """Every remote peer by member id (the member itself excluded)."""
        ...

    def fault_state(self) -> FaultState:
        """Fault switches currently set."""
        ...
