"""Load test: what the load generator's clients saw, beside what the servers did.

Client-side latency, throughput and errors (`raftmon load --metrics-port`, scraped under a
job matching `job=~".*loadgen.*"` with the cluster's label) over the same time range as
server-side proposals, fsync and request latency, so a latency step on the client can be
traced to its server-side cause on one screen.
"""

from dashboards.panels import (
    FAULTS,
    Q,
    board,
    latency_panel,
    per_member,
    tier_lines,
    timeseries,
    wal_fsync_panel,
)
from dashboards.queries import loadgen, member

M = member()
LG = loadgen()
LG_OK = loadgen('outcome="success"')
LG_FAILED = loadgen('outcome!="success"')
LG_WRITES_OK = loadgen('op=~"put|txn-put", outcome="success"')
LG_DURATION = "raftmon_loadgen_request_duration_seconds"

client_latency = latency_panel(
    "What latency do the load generator's clients see?",
    "Client-side p50 and p99 per operation, measured from the intended send time (open loop: "
    "queueing behind a slow cluster counts). Compare with the server-side panels below.",
    LG_DURATION,
    LG_OK,
    by="op",
    quantiles=(0.5, 0.99),
    legend="{{op}}",
)

throughput = timeseries(
    "How many requests per second do clients complete?",
    "Successful requests per second per operation, and the open-loop target rate (0 in "
    "closed loop). Completed below target means the cluster cannot keep up.",
    "reqps",
    [
        Q(
            f"sum by (op) (rate(raftmon_loadgen_requests_total{LG_OK}[$__rate_interval]))",
            "{{op}} ok",
        ),
        Q(f"sum(raftmon_loadgen_target_rate{LG})", "target"),
    ],
)

client_errors = timeseries(
    "Which client requests fail, and why?",
    "Failed requests per second by operation and error kind (timeout, no leader, too many "
    "requests, connection refused ...). Empty while every request succeeds.",
    "reqps",
    [
        Q(
            f"sum by (op, outcome) (rate(raftmon_loadgen_requests_total"
            f"{LG_FAILED}[$__rate_interval]))",
            "{{op}} {{outcome}}",
        )
    ],
)

inflight = timeseries(
    "How many requests are waiting for an answer?",
    "Requests sent by the load generator and not yet answered. Growing in open loop means "
    "the cluster answers slower than the target rate sends.",
    "short",
    [Q(f"sum(raftmon_loadgen_inflight_requests{LG})", "in flight")],
)

server_latency = latency_panel(
    "Is server-side request p99 below the alert tiers?",
    "p99 per request type measured inside the members, from request parsed to response ready "
    "(etcd_server_request_duration_seconds: raftmon, and etcd from 3.7). The gap to the "
    "client-side p99 is queueing and network. Lines: etcdGRPCRequestsSlow tiers.",
    "etcd_server_request_duration_seconds",
    M,
    by="type",
    quantiles=(0.99,),
    legend="{{type}}",
    lines=tier_lines("grpcRequestsSlow.request{}Seconds", "Warning", "Critical"),
)

committed = timeseries(
    "Is the cluster committing what the clients send?",
    "Raft entries committed per second per member beside the clients' successful writes per "
    "second: the two should match (plus a few internal entries).",
    "ops",
    [
        per_member("etcd_server_proposals_committed_total", "committed"),
        Q(
            f"sum(rate(raftmon_loadgen_requests_total{LG_WRITES_OK}[$__rate_interval]))",
            "client writes ok",
        ),
    ],
)

fsync = wal_fsync_panel(
    "Is WAL fsync under 25 ms during the test?",
    "WAL fsync mean and p99 per member under the generated load, with the course's 25 ms "
    "line (etcdWALFsyncSlow).",
    quantiles=(0.99,),
)

pending = timeseries(
    "Are proposals queueing or failing under the load?",
    "Proposals pending per member and failed proposals per second: a pending queue that grows "
    "with the load is the server-side twin of growing client in-flight requests.",
    "short",
    [
        Q(f"etcd_server_proposals_pending{M}", "{{instance}} pending"),
        per_member("etcd_server_proposals_failed_total", "failed", fn="increase"),
    ],
)

dashboard = board(
    "loadtest",
    __doc__,
    rows=[
        (9, [client_latency, throughput]),
        (8, [client_errors, inflight]),
        (6, [FAULTS]),
        (8, [server_latency, committed]),
        (8, [fsync, pending]),
    ],
)
