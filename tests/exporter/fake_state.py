"""An in-memory MemberStateSource for exporter tests only (never used by a member)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from exporter.state import FaultState, MvccState, PeerState, RaftState, ServerState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from exporter.state import MemberStateSource

LOCAL = 0xA48A826DF6FB13EC
PEER_A = 0x7578DD1F1C11F810
PEER_B = 0xDF50FB6F50F3E5E8

T = TypeVar("T")


@dataclass
class FakeState:
    """Every group filled with recognisable values; tests mutate the fields they need."""

    raft: RaftState = field(
        default_factory=lambda: RaftState(
            term=3,
            lead=LOCAL,
            role="leader",
            commit_index=152144,
            applied_index=152140,
            elections_started=2,
            pre_votes_started=5,
            proposals_dropped=1,
            follower_match={PEER_A: 152144, PEER_B: 152100},
        )
    )
    server: ServerState = field(
        default_factory=lambda: ServerState(
            member_id=LOCAL,
            server_version="3.4.23",
            cluster_version="3.4",
            quota_backend_bytes=2 * 1024**3,
            proposals_pending=4,
            leader_changes_seen=1,
            proposals_failed=2,
            heartbeat_send_failures=3,
            slow_applies=4,
            slow_read_indexes=5,
            read_indexes_failed=6,
            alarms=((LOCAL, "NOSPACE"),),
        )
    )
    mvcc: MvccState = field(
        default_factory=lambda: MvccState(
            db_total_size_bytes=57208832,
            db_size_in_use_bytes=40000000,
            keys=39608,
            current_revision=152137,
            compact_revision=-1,
            put_total=152136,
            range_total=92903,
            delete_total=7,
            txn_total=8,
            total_put_size_bytes=40163646,
            compaction_keys_total=9,
            events_total=10,
            watchers=11,
            watch_streams=12,
            slow_watchers=1,
            pending_events=2,
        )
    )
    peers: dict[int, PeerState] = field(
        default_factory=lambda: {
            0: PeerState(active=False, received_bytes=4920),
            PEER_A: PeerState(active=True, sent_bytes=55959840, received_bytes=5416868),
            PEER_B: PeerState(active=False, sent_bytes=100, sent_failures=7, disconnects=2),
        }
    )
    faults: FaultState = field(
        default_factory=lambda: FaultState(
            wal_fsync_delay_seconds=0.03, peer_delay_seconds={PEER_B: 0.2}, peer_drop={PEER_B: True}
        )
    )
    broken: set[str] = field(default_factory=set)  # method names that raise

    def _read(self, name: str, value: T) -> T:
        """`value`, unless the test broke method `name` (a source failing at scrape time)."""
        if name in self.broken:
            raise RuntimeError(f"{name} is broken on purpose")
        return value

    def raft_state(self) -> RaftState:
        return self._read("raft_state", self.raft)

    def server_state(self) -> ServerState:
        return self._read("server_state", self.server)

    def mvcc_state(self) -> MvccState:
        return self._read("mvcc_state", self.mvcc)

    def peer_states(self) -> Mapping[int, PeerState]:
        return self._read("peer_states", self.peers)

    def fault_state(self) -> FaultState:
        return self._read("fault_state", self.faults)


if TYPE_CHECKING:
    _: MemberStateSource = FakeState()
