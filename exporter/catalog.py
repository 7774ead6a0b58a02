"""The metric catalog: every family a raftmon member exposes, declared once.

Each `MetricSpec` carries etcd's exact exposed name (as its `# TYPE` line spells it),
type, help text, label names and histogram buckets, so etcd's rules and dashboards run
unmodified on raftmon and ours on etcd. Sources: the etcd 3.4.23 dump in
shared/reference/etcd-3.4-metrics.txt (names, types, help, buckets as exposed) and etcd's
source for families added after 3.4 (`since` says which version; `note` says how raftmon
feeds them when that is not obvious).

Three traps are encoded here rather than left to memory:
- `etcd_server_proposals_committed_total`, `etcd_server_proposals_applied_total`,
  `etcd_disk_wal_write_bytes_total` and a few `etcd_debugging_mvcc_*_total` are GAUGES.
- some etcd counters have no `_total` suffix (`etcd_server_health_failures`, ...):
  `MetricSpec.name` is always the exposed name, never a base name.
- peer labels are capitalised (`To`, `From`, `Local`, `Remote`).

`feed` says where values come from: EVENT families are pushed on the hot path through
`exporter.metrics.MemberMetrics` handles; STATE families are read at scrape time from a
`exporter.state.MemberStateSource`; PROCESS families from the OS at scrape time; HTTP
families by the /metrics handler itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CATALOG",
    "EXTENSIVE",
    "GRPC_CODES",
    "GRPC_METHODS",
    "LEFT_OUT",
    "PEER_REFUSAL_REASONS",
    "REQUEST_TYPES",
    "Feed",
    "Kind",
    "MetricSpec",
    "by_name",
    "etcd_only_series_names",
    "exponential_buckets",
    "family_names",
    "series_names",
]


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """`count` upper bounds start, start*factor, ... (Go's prometheus.ExponentialBuckets).

    Rounded to 12 significant digits so 0.001 * 2**3 is 0.008, not 0.008000000000000002,
    and the exposed `le` labels read exactly as etcd's.
    """
    if count < 1 or start <= 0 or factor <= 1:
        raise ValueError(f"invalid buckets start={start} factor={factor} count={count}")
    return tuple(float(f"{start * factor**i:.12g}") for i in range(count))


class Kind(enum.StrEnum):
    """The exposed `# TYPE` of a family."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Feed(enum.StrEnum):
    """Where a family's values come from."""

    EVENT = "event"  # pushed by the member through MemberMetrics handles (hot path)
    STATE = "state"  # read from MemberStateSource when Prometheus scrapes
    PROCESS = "process"  # read from the OS (/proc, rlimits) when Prometheus scrapes
    HTTP = "http"  # maintained by the /metrics handler itself


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family as raftmon exposes it."""

    name: str  # exactly as exposed in `# TYPE` and in the sample names
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histogram upper bounds, +Inf implied
    feed: Feed = Feed.EVENT
    since: str = "3.4"  # etcd version that has the family; "raftmon" for our own
    note: str = ""  # raftmon semantics or naming caveats worth a reader's attention
    # The member flag that turns the family on, as etcd gates it ("--metrics=extensive");
    # empty for the families every member exposes.
    only_with: str = ""

    def series_names(self) -> tuple[str, ...]:
        """Sample names a PromQL expression may use for this family."""
        if self.kind is Kind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _c(
    name: str, help_: str, *labels: str, feed: Feed = Feed.EVENT, since: str = "3.4", note: str = ""
) -> MetricSpec:
    return MetricSpec(name, Kind.COUNTER, help_, labels, (), feed, since, note)


def _g(
    name: str, help_: str, *labels: str, feed: Feed = Feed.EVENT, since: str = "3.4", note: str = ""
) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, help_, labels, (), feed, since, note)


def _h(
    name: str,
    help_: str,
    buckets: tuple[float, ...],
    *labels: str,
    feed: Feed = Feed.EVENT,
    since: str = "3.4",
    note: str = "",
    only_with: str = "",
) -> MetricSpec:
    return MetricSpec(name, Kind.HISTOGRAM, help_, labels, buckets, feed, since, note, only_with)


EVENT, STATE, PROCESS, HTTP = Feed.EVENT, Feed.STATE, Feed.PROCESS, Feed.HTTP

# Bucket layouts, named after the etcd source that declares them.
_DISK = exponential_buckets(0.001, 2, 14)  # 1 ms … 8.192 s (WAL, backend commit, snap fsync)
_RTT = exponential_buckets(0.0001, 2, 16)  # 0.1 ms … 3.2768 s (rafthttp)
_APPLY = exponential_buckets(0.0001, 2, 20)  # 0.1 ms … 52.4288 s (apply)
_SNAP_NET = exponential_buckets(0.1, 2, 10)  # 0.1 s … 51.2 s (snapshot send/receive/save)
_HASH = exponential_buckets(0.01, 2, 15)  # 10 ms … 163.84 s (mvcc hash)
_LEASE_TTL = exponential_buckets(1, 2, 24)  # 1 s … 8388608 s
# Prometheus's DefBuckets, which go-grpc-prometheus's handling histogram keeps by default.
_GRPC_DEF = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --------------------------------------------------------------------------- disk / WAL
WAL_FSYNC = _h(
    "etcd_disk_wal_fsync_duration_seconds",
    "The latency distributions of fsync called by WAL.",
    _DISK,
)
WAL_WRITE = _h(
    "etcd_disk_wal_write_duration_seconds",
    "The latency distributions of write called by WAL.",
    _DISK,
    since="3.5",
)
WAL_WRITE_BYTES = _g(
    "etcd_disk_wal_write_bytes_total",
    "Total number of bytes written in WAL.",
    note="a gauge in etcd despite the suffix; raftmon increments it by record bytes written",
)
BACKEND_COMMIT = _h(
    "etcd_disk_backend_commit_duration_seconds",
    "The latency distributions of commit called by backend.",
    _DISK,
    note="one SQLite commit of a backend batch: up to --backend-batch-interval of applied entries",
)
BACKEND_DEFRAG = _h(
    "etcd_disk_backend_defrag_duration_seconds",
    "The latency distribution of backend defragmentation.",
    exponential_buckets(0.1, 2, 13),
    note="SQLite incremental vacuum, in steps; one whole VACUUM for an older file",
)
BACKEND_SNAPSHOT = _h(
    "etcd_disk_backend_snapshot_duration_seconds",
    "The latency distribution of backend snapshots.",
    exponential_buckets(0.01, 2, 17),
    note="SQLite backup-API image taken for a Raft snapshot or a Snapshot RPC",
)
DEFRAG_INFLIGHT = _g(
    "etcd_disk_defrag_inflight",
    "Whether or not defrag is active on the member. 1 means active, 0 means not.",
    feed=STATE,
    note="1 from the start of a Defragment call until it ends, failed or not",
)
SNAP_FSYNC = _h(
    "etcd_snap_fsync_duration_seconds",
    "The latency distributions of fsync called by snap.",
    _DISK,
)
SNAP_DB_FSYNC = _h(
    "etcd_snap_db_fsync_duration_seconds",
    "The latency distributions of fsyncing .snap.db file",
    _DISK,
)
SNAP_DB_SAVE = _h(
    "etcd_snap_db_save_total_duration_seconds",
    "The total latency distributions of v3 snapshot save",
    _SNAP_NET,
    note="saving a .snap.db received from the leader",
)
SNAP_SAVE_TOTAL = _h(
    "etcd_debugging_snap_save_total_duration_seconds",
    "The total latency distributions of save called by snapshot.",
    _DISK,
)

# --------------------------------------------------------------------------- server / Raft
HAS_LEADER = _g(
    "etcd_server_has_leader",
    "Whether or not a leader exists. 1 is existence, 0 is not.",
    feed=STATE,
)
IS_LEADER = _g(
    "etcd_server_is_leader",
    "Whether or not this member is a leader. 1 if is, 0 otherwise.",
    feed=STATE,
)
IS_LEARNER = _g(
    "etcd_server_is_learner",
    "Whether or not this member is a learner. 1 if is, 0 otherwise.",
    feed=STATE,
    note=(
        "always 0, truthfully: raftmon has no membership changes yet, so every member is a"
        " voter from the initial cluster and none is ever a learner"
    ),
)
LEADER_CHANGES = _c(
    "etcd_server_leader_changes_seen_total",
    "The number of leader changes seen.",
    feed=STATE,
    note="ServerState.leader_changes_seen: Readys whose soft state carries a new non-zero lead",
)
PROPOSALS_COMMITTED = _g(
    "etcd_server_proposals_committed_total",
    "The total number of consensus proposals committed.",
    feed=STATE,
    note="a gauge: the Raft commit index, as etcd sets it",
)
PROPOSALS_APPLIED = _g(
    "etcd_server_proposals_applied_total",
    "The total number of consensus proposals applied.",
    feed=STATE,
    note="a gauge: the applied index, as etcd sets it",
)
PROPOSALS_PENDING = _g(
    "etcd_server_proposals_pending",
    "The current number of pending proposals to commit.",
    feed=STATE,
)
PROPOSALS_FAILED = _c(
    "etcd_server_proposals_failed_total",
    "The total number of failed proposals seen.",
    note="a proposal dropped by Raft or timed out before it was applied",
    feed=STATE,
)
HEARTBEAT_SEND_FAILURES = _c(
    "etcd_server_heartbeat_send_failures_total",
    "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
    note="the leader sent a heartbeat later than twice the heartbeat interval",
    feed=STATE,
)
SLOW_APPLY = _c(
    "etcd_server_slow_apply_total",
    "The total number of slow apply requests (likely overloaded from slow disk).",
    note="an apply slower than 100 ms (etcd's --warning-apply-duration default)",
    feed=STATE,
)
SLOW_READ_INDEXES = _c(
    "etcd_server_slow_read_indexes_total",
    "The total number of pending read indexes not in sync with leader's or timed out read"
    " index requests.",
    feed=STATE,
)
READ_INDEXES_FAILED = _c(
    "etcd_server_read_indexes_failed_total",
    "The total number of failed read indexes seen.",
    feed=STATE,
)
SNAPSHOT_APPLY_IN_PROGRESS = _g(
    "etcd_server_snapshot_apply_in_progress_total",
    "1 if the server is applying the incoming snapshot. 0 if none.",
    feed=STATE,
)
QUOTA_BACKEND_BYTES = _g(
    "etcd_server_quota_backend_bytes",
    "Current backend storage quota size in bytes.",
    feed=STATE,
)
HEALTH_SUCCESS = _c(
    "etcd_server_health_success",
    "The total number of successful health checks",
    note="no _total suffix, as etcd; counted by the /health handler",
)
HEALTH_FAILURES = _c(
    "etcd_server_health_failures",
    "The total number of failed health checks",
    note="no _total suffix, as etcd; counted by the /health handler",
)
LEARNER_PROMOTE_SUCCESSES = _c(
    "etcd_server_learner_promote_successes",
    "The total number of successful learner promotions while this member is leader.",
    note="no _total suffix, as etcd; stays 0 while raftmon has no learners to promote",
)
CLIENT_REQUESTS = _c(
    "etcd_server_client_requests_total",
    "The total number of client requests per client version.",
    "client_api_version",
    "type",
    note='type is "unary" or "stream"; gateway clients send no version: "unknown", as etcd',
)
APPLY_DURATION = _h(
    "etcd_server_apply_duration_seconds",
    "The latency distributions of v2 apply called by backend.",
    _APPLY,
    "version",
    "op",
    "success",
    since="3.5",
    note=(
        "etcd's help text, verbatim; version=\"v3\", op is the applied request's type,"
        ' success="false" when applying it produced an etcd error'
    ),
)
REQUEST_DURATION = _h(
    "etcd_server_request_duration_seconds",
    "The latency distributions of client requests, end to end, by request type and outcome.",
    _DISK,
    "type",
    "success",
    since="3.7",
    note="not in etcd 3.4 (etcd-io/etcd#21036, v3.7); raftmon defines it: from request"
    " parsed to response ready, consensus and apply included; type from REQUEST_TYPES",
)
SERVER_ID = _g(
    "etcd_server_id",
    "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
    "server_id",
    feed=STATE,
)
SERVER_VERSION = _g(
    "etcd_server_version",
    "Which version is running. 1 for 'server_version' label with current version.",
    "server_version",
    feed=STATE,
)
CLUSTER_VERSION = _g(
    "etcd_cluster_version",
    "Which version is running. 1 for 'cluster_version' label with current cluster version",
    "cluster_version",
    feed=STATE,
)
ALARMS = _g(
    "etcd_debugging_server_alarms",
    "Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for"
    " 'alarm_type' label with type of this alarm",
    "server_id",
    "alarm_type",
    feed=STATE,
    since="3.6",
    note="one series per active alarm (NOSPACE, CORRUPT), value 1; absent when none",
)

# --------------------------------------------------------------------------- leases
LEASE_EXPIRED = _c(
    "etcd_debugging_server_lease_expired_total",
    "The total number of expired leases.",
)
LEASE_GRANTED = _c(
    "etcd_debugging_lease_granted_total",
    "The total number of granted leases.",
)
LEASE_RENEWED = _c(
    "etcd_debugging_lease_renewed_total",
    "The number of renewed leases seen by the leader.",
)
LEASE_REVOKED = _c(
    "etcd_debugging_lease_revoked_total",
    "The total number of revoked leases.",
)
LEASE_TTL = _h(
    "etcd_debugging_lease_ttl_total",
    "Bucketed histogram of lease TTLs.",
    _LEASE_TTL,
    note="a histogram despite the suffix, as etcd",
)

# --------------------------------------------------------------------------- mvcc
DB_TOTAL_SIZE = _g(
    "etcd_mvcc_db_total_size_in_bytes",
    "Total size of the underlying database physically allocated in bytes.",
    feed=STATE,
    note="SQLite page_count*page_size plus the -wal file",
)
DB_TOTAL_SIZE_DEBUGGING = _g(
    "etcd_debugging_mvcc_db_total_size_in_bytes",
    "Total size of the underlying database physically allocated in bytes.",
    feed=STATE,
    note="same value as etcd_mvcc_db_total_size_in_bytes; etcd 3.4 exposes both",
)
DB_SIZE_IN_USE = _g(
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "Total size of the underlying database logically in use in bytes.",
    feed=STATE,
    note="SQLite (page_count - freelist_count)*page_size",
)
MVCC_PUT = _c("etcd_mvcc_put_total", "Total number of puts seen by this member.", feed=STATE)
MVCC_RANGE = _c("etcd_mvcc_range_total", "Total number of ranges seen by this member.", feed=STATE)
MVCC_DELETE = _c(
    "etcd_mvcc_delete_total", "Total number of deletes seen by this member.", feed=STATE
)
MVCC_TXN = _c("etcd_mvcc_txn_total", "Total number of txns seen by this member.", feed=STATE)
DEBUG_PUT = _c(
    "etcd_debugging_mvcc_put_total", "Total number of puts seen by this member.", feed=STATE
)
DEBUG_RANGE = _c(
    "etcd_debugging_mvcc_range_total", "Total number of ranges seen by this member.", feed=STATE
)
DEBUG_DELETE = _c(
    "etcd_debugging_mvcc_delete_total", "Total number of deletes seen by this member.", feed=STATE
)
DEBUG_TXN = _c(
    "etcd_debugging_mvcc_txn_total", "Total number of txns seen by this member.", feed=STATE
)
MVCC_EVENTS = _c(
    "etcd_debugging_mvcc_events_total", "Total number of events sent by this member.", feed=STATE
)
MVCC_KEYS = _g("etcd_debugging_mvcc_keys_total", "Total number of keys.", feed=STATE)
MVCC_CURRENT_REVISION = _g(
    "etcd_debugging_mvcc_current_revision", "The current revision of store.", feed=STATE
)
MVCC_COMPACT_REVISION = _g(
    "etcd_debugging_mvcc_compact_revision",
    "The revision of the last compaction in store.",
    feed=STATE,
    note="-1 before the first compaction, as etcd",
)
MVCC_PENDING_EVENTS = _g(
    "etcd_debugging_mvcc_pending_events_total",
    "Total number of pending events to be sent.",
    feed=STATE,
)
MVCC_SLOW_WATCHERS = _g(
    "etcd_debugging_mvcc_slow_watcher_total",
    "Total number of unsynced slow watchers.",
    feed=STATE,
)
MVCC_WATCHERS = _g("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", feed=STATE)
MVCC_WATCH_STREAMS = _g(
    "etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.", feed=STATE
)
MVCC_PUT_SIZE = _g(
    "etcd_debugging_mvcc_total_put_size_in_bytes",
    "The total size of put kv pairs seen by this member.",
    feed=STATE,
)
MVCC_COMPACTION_KEYS = _c(
    "etcd_debugging_mvcc_db_compaction_keys_total",
    "Total number of db keys compacted.",
    feed=STATE,
)
MVCC_COMPACTION_PAUSE = _h(
    "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    "Bucketed histogram of db compaction pause duration.",
    exponential_buckets(1, 2, 13),
    note="milliseconds, as etcd; the compaction transaction, or each batch of a batched one",
)
MVCC_COMPACTION_TOTAL = _h(
    "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    "Bucketed histogram of db compaction total duration.",
    exponential_buckets(100, 2, 14),
    note="milliseconds, as etcd",
)
MVCC_HASH = _h(
    "etcd_mvcc_hash_duration_seconds",
    "The latency distribution of storage hash operation.",
    _HASH,
)
MVCC_HASH_REV = _h(
    "etcd_mvcc_hash_rev_duration_seconds",
    "The latency distribution of storage hash by revision operation.",
    _HASH,
)

# --------------------------------------------------------------------------- network
PEER_RTT = _h(
    "etcd_network_peer_round_trip_time_seconds",
    "Round-Trip-Time histogram between peers",
    _RTT,
    "To",
)
PEER_SENT_BYTES = _c(
    "etcd_network_peer_sent_bytes_total",
    "The total number of bytes sent to peers.",
    "To",
    feed=STATE,
)
PEER_RECEIVED_BYTES = _c(
    "etcd_network_peer_received_bytes_total",
    "The total number of bytes received from peers.",
    "From",
    feed=STATE,
)
PEER_SENT_FAILURES = _c(
    "etcd_network_peer_sent_failures_total",
    "The total number of send failures from peers.",
    "To",
    feed=STATE,
    note="in etcd 3.4 too, absent from the dump only because no send had failed",
)
PEER_RECEIVED_FAILURES = _c(
    "etcd_network_peer_received_failures_total",
    "The total number of receive failures from peers.",
    "From",
    feed=STATE,
)
ACTIVE_PEERS = _g(
    "etcd_network_active_peers",
    "The current number of active peer connections.",
    "Local",
    "Remote",
    feed=STATE,
)
DISCONNECTED_PEERS = _c(
    "etcd_network_disconnected_peers_total",
    "The total number of disconnected peers.",
    "Local",
    "Remote",
    feed=STATE,
)
SNAPSHOT_SEND_SUCCESS = _c(
    "etcd_network_snapshot_send_success",
    "Total number of successful snapshot sends",
    "To",
    note="no _total suffix, as etcd",
)
SNAPSHOT_SEND_FAILURES = _c(
    "etcd_network_snapshot_send_failures",
    "Total number of snapshot send failures",
    "To",
    note="no _total suffix, as etcd",
)
SNAPSHOT_SEND_DURATION = _h(
    "etcd_network_snapshot_send_total_duration_seconds",
    "Total latency distributions of v3 snapshot sends",
    _SNAP_NET,
    "To",
)
SNAPSHOT_SEND_INFLIGHTS = _g(
    "etcd_network_snapshot_send_inflights_total",
    "Total number of inflight snapshot sends",
    "To",
    feed=STATE,
    since="3.5",
    note="a gauge despite the suffix, as etcd",
)
SNAPSHOT_RECEIVE_SUCCESS = _c(
    "etcd_network_snapshot_receive_success",
    "Total number of successful snapshot receives",
    "From",
    note="no _total suffix, as etcd",
)
SNAPSHOT_RECEIVE_FAILURES = _c(
    "etcd_network_snapshot_receive_failures",
    "Total number of snapshot receive failures",
    "From",
    note="no _total suffix, as etcd",
)
SNAPSHOT_RECEIVE_DURATION = _h(
    "etcd_network_snapshot_receive_total_duration_seconds",
    "Total latency distributions of v3 snapshot receives",
    _SNAP_NET,
    "From",
)
SNAPSHOT_RECEIVE_INFLIGHTS = _g(
    "etcd_network_snapshot_receive_inflights_total",
    "Total number of inflight snapshot receives",
    "From",
    feed=STATE,
    since="3.5",
    note="a gauge despite the suffix, as etcd",
)
CLIENT_RECEIVED_BYTES = _c(
    "etcd_network_client_grpc_received_bytes_total",
    "The total number of bytes received from grpc clients.",
    note="request body bytes of the JSON gateway, stream messages (watch, keep-alive) included",
)
CLIENT_SENT_BYTES = _c(
    "etcd_network_client_grpc_sent_bytes_total",
    "The total number of bytes sent to grpc clients.",
    note="response body bytes of the JSON gateway, stream messages (watch, keep-alive) included",
)

# --------------------------------------------------------------------------- gRPC (gateway)
_GRPC = ("grpc_method", "grpc_service", "grpc_type")
GRPC_STARTED = _c(
    "grpc_server_started_total",
    "Total number of RPCs started on the server.",
    *_GRPC,
    note="the JSON gateway counts each call under etcd's gRPC service and method, as etcd's"
    " own grpc-gateway does; every (service, method) is pre-initialised to 0, as etcd",
)
GRPC_HANDLED = _c(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    "grpc_code",
    *_GRPC,
)
GRPC_MSG_RECEIVED = _c(
    "grpc_server_msg_received_total",
    "Total number of RPC stream messages received on the server.",
    *_GRPC,
    note="one per unary request, one per JSON object read from a stream's body",
)
GRPC_MSG_SENT = _c(
    "grpc_server_msg_sent_total",
    "Total number of gRPC stream messages sent by the server.",
    *_GRPC,
    note="one per OK unary answer, one per line written to a stream",
)
EXTENSIVE = "--metrics=extensive"
GRPC_HANDLING = _h(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled"
    " by the server.",
    _GRPC_DEF,
    *_GRPC,
    note="observed once per finished call, gRPC and JSON gateway alike: a unary call at its"
    " answer, a stream when it ends; every method pre-initialised, as etcd",
    only_with=EXTENSIVE,
)

# --------------------------------------------------------------------------- process / OS
OS_FD_USED = _g("os_fd_used", "The number of used file descriptors.", feed=PROCESS)
OS_FD_LIMIT = _g("os_fd_limit", "The file descriptor limit.", feed=PROCESS)
PROCESS_CPU = _c(
    "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", feed=PROCESS
)
PROCESS_OPEN_FDS = _g("process_open_fds", "Number of open file descriptors.", feed=PROCESS)
PROCESS_MAX_FDS = _g("process_max_fds", "Maximum number of open file descriptors.", feed=PROCESS)
PROCESS_RSS = _g("process_resident_memory_bytes", "Resident memory size in bytes.", feed=PROCESS)
PROCESS_VSIZE = _g("process_virtual_memory_bytes", "Virtual memory size in bytes.", feed=PROCESS)
PROCESS_VSIZE_MAX = _g(
    "process_virtual_memory_max_bytes",
    "Maximum amount of virtual memory available in bytes.",
    feed=PROCESS,
    note="RLIMIT_AS; unlimited is 2^64-1, as Go's collector reports it",
)
PROCESS_START = _g(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    feed=PROCESS,
)
SCRAPES_IN_FLIGHT = _g(
    "promhttp_metric_handler_requests_in_flight",
    "Current number of scrapes being served.",
    feed=HTTP,
)
SCRAPES = _c(
    "promhttp_metric_handler_requests_total",
    "Total number of scrapes by HTTP status code.",
    "code",
    feed=HTTP,
)

# ------------------------------------------------------------- raftmon_ (etcd has none)
PYTHON_VERSION = _g(
    "raftmon_server_python_version",
    "Which Python version the member runs on. 1 for 'server_python_version' label.",
    "server_python_version",
    since="raftmon",
    note="stands in for etcd_server_go_version, which raftmon does not fake",
)
RAFT_TERM = _g("raftmon_raft_term", "The current Raft term.", feed=STATE, since="raftmon")
RAFT_ROLE = _g(
    "raftmon_raft_role",
    "Raft role of this member: 1 for the current 'role' label, 0 for the others.",
    "role",
    feed=STATE,
    since="raftmon",
    note="shows candidates and pre-candidates, which is_leader/has_leader cannot",
)
RAFT_ELECTIONS = _c(
    "raftmon_raft_elections_started_total",
    "The total number of elections (campaigns for votes) this member started.",
    feed=STATE,
    since="raftmon",
)
RAFT_PRE_VOTES = _c(
    "raftmon_raft_pre_votes_started_total",
    "The total number of pre-vote rounds this member started.",
    feed=STATE,
    since="raftmon",
    note="pre-votes that never become elections are the harmless flapping PreVote absorbs",
)
RAFT_PROPOSALS_DROPPED = _c(
    "raftmon_raft_proposals_dropped_total",
    "The total number of proposals the Raft core dropped (no leader, leader transfer).",
    feed=STATE,
    since="raftmon",
)
RAFT_MESSAGES_DROPPED = _c(
    "raftmon_raft_messages_dropped_total",
    "The total number of peer messages the Raft core ignored.",
    feed=STATE,
    since="raftmon",
    note=(
        "stale terms, unknown senders, and appends, heartbeats or snapshots at a term from"
        " anyone but that term's known leader (forged peer traffic shows here)"
    ),
)
RAFT_FOLLOWER_MATCH = _g(
    "raftmon_raft_follower_match_index",
    "Highest log index known replicated on each follower; exposed by the leader only.",
    "To",
    feed=STATE,
    since="raftmon",
    note="with etcd_server_proposals_committed_total it gives per-follower replication lag",
)
PEER_REFUSED = _c(
    "raftmon_network_peer_refused_total",
    "The total number of peer requests (streams, snapshot uploads) refused at admission.",
    "reason",
    since="raftmon",
    note=(
        "reason: protocol_mismatch, cluster_id_mismatch, wrong_recipient (412), unknown_sender"
        " (404), stream_in_use (409: the claimed member already streams); etcd counts none of"
        " these, and frames dropped from an admitted member go to"
        " etcd_network_peer_received_failures_total{From}"
    ),
)
PROPOSALS_SENT_AGAIN = _c(
    "raftmon_server_proposals_sent_again_total",
    "The total number of proposals sent again because the leader changed before they were applied.",
    feed=STATE,
    since="raftmon",
    note=(
        "a proposal forwarded to a leader that died before replicating it would otherwise"
        " cost its client a request timeout (etcd's \"possibly due to previous leader"
        ' failure"); the apply skips whichever copy comes second'
    ),
)
DUPLICATES_SKIPPED = _c(
    "raftmon_server_apply_duplicates_skipped_total",
    "The total number of committed entries skipped because their request was already applied.",
    feed=STATE,
    since="raftmon",
    note="the second copies of proposals sent again; every member skips the same entries",
)
LOOP_LAG = _h(
    "raftmon_server_event_loop_lag_seconds",
    "How late the member's periodic Raft tick ran compared with its schedule.",
    _RTT,
    since="raftmon",
    note="a stalled asyncio loop is the usual Python cause of late heartbeats",
)
APPLY_BATCH = _h(
    "raftmon_server_apply_batch_duration_seconds",
    "The latency distribution of applying one batch of committed entries to the store.",
    _APPLY,
    since="raftmon",
    note="one observation per Ready; per-request apply time is etcd_server_apply_duration_seconds",
)
FAULT_WAL_FSYNC_DELAY = _g(
    "raftmon_fault_wal_fsync_delay_seconds",
    "Injected delay added inside every WAL fsync (fault injection; 0 when off).",
    feed=STATE,
    since="raftmon",
)
FAULT_PEER_DELAY = _g(
    "raftmon_fault_peer_delay_seconds",
    "Injected delay before each batch sent to a peer (fault injection; 0 when off).",
    "To",
    feed=STATE,
    since="raftmon",
)
FAULT_PEER_DROP = _g(
    "raftmon_fault_peer_drop",
    "1 if everything sent to this peer is dropped (fault injection: one-way partition).",
    "To",
    feed=STATE,
    since="raftmon",
)
FAULT_TICKS_PAUSED = _g(
    "raftmon_fault_raft_ticks_paused",
    "1 if this member's Raft ticks are paused (fault injection: a frozen member).",
    feed=STATE,
    since="raftmon",
)

# Every MetricSpec declared above, in declaration order: adding a family is adding a
# module-level constant, nothing else.
CATALOG: tuple[MetricSpec, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, MetricSpec)
)
_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}
if len(_BY_NAME) != len(CATALOG):  # pragma: no cover - a declaration error, caught at import
    raise RuntimeError("duplicate metric family name in exporter.catalog")


def by_name(name: str) -> MetricSpec:
    """The spec of an exposed family name (KeyError if raftmon does not expose it)."""
    return _BY_NAME[name]


def family_names() -> set[str]:
    """Every family name a member exposes, as in `# TYPE` lines."""
    return set(_BY_NAME)


def series_names() -> set[str]:
    """Every sample name a PromQL expression can select (histograms: _bucket/_sum/_count)."""
    return {series for spec in CATALOG for series in spec.series_names()}


# --------------------------------------------------------------------------- label values
# etcd's gRPC services and methods, with the call type go-grpc-prometheus reports. etcd
# pre-initialises every one of them (and every code below) to 0; so does raftmon, so a
# dashboard shows the same series on both (41 methods, as the etcd 3.4 dump).
_GRPC_SERVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("etcdserverpb.KV", ("Compact", "DeleteRange", "Put", "Range", "Txn")),
    ("etcdserverpb.Watch", ("Watch:bidi_stream",)),
    (
        "etcdserverpb.Lease",
        (
            "LeaseGrant",
            "LeaseKeepAlive:bidi_stream",
            "LeaseLeases",
            "LeaseRevoke",
            "LeaseTimeToLive",
        ),
    ),
    (
        "etcdserverpb.Cluster",
        ("MemberAdd", "MemberList", "MemberPromote", "MemberRemove", "MemberUpdate"),
    ),
    (
        "etcdserverpb.Maintenance",
        ("Alarm", "Defragment", "Hash", "HashKV", "MoveLeader", "Snapshot:server_stream", "Status"),
    ),
    (
        "etcdserverpb.Auth",
        (
            "AuthDisable",
            "AuthEnable",
            "Authenticate",
            "RoleAdd",
            "RoleDelete",
            "RoleGet",
            "RoleGrantPermission",
            "RoleList",
            "RoleRevokePermission",
            "UserAdd",
            "UserChangePassword",
            "UserDelete",
            "UserGet",
            "UserGrantRole",
            "UserList",
            "UserRevokeRole",
        ),
    ),
    ("grpc.health.v1.Health", ("Check", "Watch:server_stream")),
)


def _grpc_methods() -> tuple[tuple[str, str, str], ...]:
    """(service, method, grpc_type) for every method; "Name:kind" marks a streaming call."""
    table: list[tuple[str, str, str]] = []
    for service, methods in _GRPC_SERVICES:
        for entry in methods:
            method, _, kind = entry.partition(":")
            table.append((service, method, kind or "unary"))
    return tuple(table)


GRPC_METHODS: tuple[tuple[str, str, str], ...] = _grpc_methods()

# The gRPC status codes, spelled as go-grpc-prometheus spells them.
GRPC_CODES: tuple[str, ...] = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)

# `reason` values of raftmon_network_peer_refused_total, pre-initialised to 0 (the
# transport names them in node/transport/stats.py; a test keeps both lists equal).
PEER_REFUSAL_REASONS: tuple[str, ...] = (
    "protocol_mismatch",
    "cluster_id_mismatch",
    "wrong_recipient",
    "unknown_sender",
    "stream_in_use",
)

# `type` values of etcd_server_request_duration_seconds and `op` of apply_duration.
REQUEST_TYPES: tuple[str, ...] = (
    "Range",
    "ReadonlyTxn",
    "Put",
    "DeleteRange",
    "Txn",
    "Compaction",
    "LeaseGrant",
    "LeaseRevoke",
    "LeaseTimeToLive",
    "LeaseLeases",
    "Alarm",
)

# --------------------------------------------------------------------------- left out
_GO_RUNTIME = (
    "Go runtime statistics: raftmon is a Python process; its memory, CPU and fds are in"
    " process_*, its interpreter version in raftmon_server_python_version"
)
_GO_FAMILIES = (
    "go_gc_duration_seconds",
    "go_goroutines",
    "go_info",
    "go_memstats_alloc_bytes",
    "go_memstats_alloc_bytes_total",
    "go_memstats_buck_hash_sys_bytes",
    "go_memstats_frees_total",
    "go_memstats_gc_sys_bytes",
    "go_memstats_heap_alloc_bytes",
    "go_memstats_heap_idle_bytes",
    "go_memstats_heap_inuse_bytes",
    "go_memstats_heap_objects",
    "go_memstats_heap_released_bytes",
    "go_memstats_heap_sys_bytes",
    "go_memstats_last_gc_time_seconds",
    "go_memstats_lookups_total",
    "go_memstats_mallocs_total",
    "go_memstats_mcache_inuse_bytes",
    "go_memstats_mcache_sys_bytes",
    "go_memstats_mspan_inuse_bytes",
    "go_memstats_mspan_sys_bytes",
    "go_memstats_next_gc_bytes",
    "go_memstats_other_sys_bytes",
    "go_memstats_stack_inuse_bytes",
    "go_memstats_stack_sys_bytes",
    "go_memstats_sys_bytes",
    "go_threads",
)
_V2_STORE = "the etcd v2 store (v2 API, v2 membership); raftmon implements only the v3 API"
_GRPC_PROXY = "etcd's gRPC proxy (etcd grpc-proxy); raftmon members serve clients directly"
_BBOLT = (
    "bbolt B+tree internals (rebalance/spill/write phases of a bbolt commit); raftmon's SQLite"
    " commit is one call, timed by etcd_disk_backend_commit_duration_seconds"
)

# Families real etcd 3.4 exposes that raftmon does not, each with the reason.
LEFT_OUT: dict[str, str] = {
    **dict.fromkeys(_GO_FAMILIES, _GO_RUNTIME),
    "etcd_server_go_version": (
        "raftmon is not a Go program and does not fake a Go version; see"
        " raftmon_server_python_version"
    ),
    "etcd_debugging_auth_revision": "etcd auth (users, roles, tokens) is not implemented",
    "etcd_debugging_disk_backend_commit_rebalance_duration_seconds": _BBOLT,
    "etcd_debugging_disk_backend_commit_spill_duration_seconds": _BBOLT,
    "etcd_debugging_disk_backend_commit_write_duration_seconds": _BBOLT,
    "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds": (
        "etcd's in-memory treeIndex; raftmon's revision index lives in SQLite and is"
        " compacted by the same transactions etcd_debugging_mvcc_db_compaction_* time"
    ),
    "etcd_debugging_snap_save_marshalling_duration_seconds": (
        "raftmon's snapshot metadata is a small fixed record, not a protobuf worth timing"
        " apart; the whole save is etcd_debugging_snap_save_total_duration_seconds"
    ),
    "etcd_mvcc_db_open_read_transactions": (
        "bbolt read transactions; raftmon's SQLite reads are single statements on the"
        " member's thread, never held open, so the value would always be 0"
    ),
    "etcd_debugging_store_expires_total": _V2_STORE,
    "etcd_debugging_store_reads_total": _V2_STORE,
    "etcd_debugging_store_watch_requests_total": _V2_STORE,
    "etcd_debugging_store_watchers": _V2_STORE,
    "etcd_debugging_store_writes_total": _V2_STORE,
    "etcd_grpc_proxy_cache_hits_total": _GRPC_PROXY,
    "etcd_grpc_proxy_cache_keys_total": _GRPC_PROXY,
    "etcd_grpc_proxy_cache_misses_total": _GRPC_PROXY,
    "etcd_grpc_proxy_events_coalescing_total": _GRPC_PROXY,
    "etcd_grpc_proxy_watchers_coalescing_total": _GRPC_PROXY,
}


def etcd_only_series_names() -> set[str]:
    """Sample names of LEFT_OUT families (real etcd only).

    A superset (name, _sum, _count, and _bucket for durations), which is what a "does this
    name exist somewhere" check needs.
    """
    names: set[str] = set()
    for name in LEFT_OUT:
        names.update((name, f"{name}_sum", f"{name}_count"))
        if name.endswith(("_seconds", "_milliseconds")):
            names.add(f"{name}_bucket")
    return names
