"""The member's scrape-time view for the exporter (`exporter.state.MemberStateSource`).

Everything here is read when Prometheus scrapes, from numbers the Raft core,
the server, the store and the transport already keep, so the request path pays
nothing for these metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.state import FaultState, MvccState, PeerState, RaftState, ServerState
from node.config import CLUSTER_VERSION, ETCD_VERSION
from node.raft import StateType

if TYPE_CHECKING:
    from collections.abc import Mapping

    from node.server import EtcdServer

_ROLES = {
    StateType.StateFollower: "follower",
    StateType.StatePreCandidate: "pre_candidate",
    StateType.StateCandidate: "candidate",
    StateType.StateLeader: "leader",
}


class ServerStateSource:
    """Reads a running `EtcdServer` for the exporter's state collector."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    def raft_state(self) -> RaftState:
        st = self.server.status()
        return RaftState(
            term=st.term,
            lead=st.lead,
            role=_ROLES.get(st.role, "follower"),
            commit_index=st.commit,
            applied_index=self.server.applied_index,
            is_learner=self.server.is_learner,
            elections_started=st.elections_started,
            pre_votes_started=st.pre_votes_started,
            proposals_dropped=st.proposals_dropped,
            messages_dropped=st.messages_dropped,
            follower_match={peer: p[0] for peer, p in st.progress.items()},
        )

    def server_state(self) -> ServerState:
        d = self.server
        c = d.counters
        return ServerState(
            member_id=d.member_id,
            server_version=ETCD_VERSION,
            cluster_version=CLUSTER_VERSION.rsplit(".", 1)[0],
            quota_backend_bytes=d.cfg.quota_backend_bytes,
            proposals_pending=d.proposals.pending,
            leader_changes_seen=c.leader_changes_seen,
            proposals_failed=c.proposals_failed,
            heartbeat_send_failures=c.heartbeat_send_failures,
            slow_applies=c.slow_applies,
            slow_read_indexes=c.slow_read_indexes,
            read_indexes_failed=c.read_indexes_failed,
            proposals_sent_again=d.proposals.sent_again,
            duplicates_skipped=d.kv.duplicates_skipped,
            snapshot_apply_in_progress=d.snapshots.installing,
            defrag_inflight=d.defrag_inflight,
            alarms=tuple(d.kv.alarms()),
        )

    def mvcc_state(self) -> MvccState:
        s = self.server.kv.stats()
        return MvccState(
            db_total_size_bytes=s.db_total_size,
            db_size_in_use_bytes=s.db_in_use_size,
            keys=s.keys_total,
            current_revision=s.current_revision,
            compact_revision=s.compact_revision,
            put_total=s.put_total,
            range_total=s.range_total,
            delete_total=s.delete_total,
            txn_total=s.txn_total,
            total_put_size_bytes=s.total_put_size,
            compaction_keys_total=s.compaction_keys_total,
            events_total=s.events_total,
            watchers=s.watchers,
            watch_streams=s.watch_streams,
            slow_watchers=s.slow_watchers,
            pending_events=s.pending_events,
        )

    def peer_states(self) -> Mapping[int, PeerState]:
        return {
            peer: PeerState(
                active=p.active,
                sent_bytes=p.sent_bytes,
                received_bytes=p.received_bytes,
                sent_failures=p.send_failures,
                received_failures=p.receive_failures,
                disconnects=p.disconnects,
                snapshot_send_inflight=p.snapshot_send_inflight,
                snapshot_receive_inflight=p.snapshot_receive_inflight,
            )
            for peer, p in self.server.transport.stats().items()
        }

    def fault_state(self) -> FaultState:
        d = self.server
        faults = d.transport.faults()
        return FaultState(
            wal_fsync_delay_seconds=d.wal.fsync_delay_seconds,
            raft_ticks_paused=d.faults.ticks_paused,
            peer_delay_seconds={p: f.delay_seconds for p, f in faults.items()},
            peer_drop={p: f.drop for p, f in faults.items()},
        )
