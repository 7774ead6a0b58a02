"""Cluster overview: is the cluster whole, led, committing, answering, and within quota?

Fixes etcd's own board: its "Raft proposals" panel plots leader changes; here the
proposal panels plot proposals, and every query carries the instance variable.
"""

from dashboards.panels import (
    FAULTS,
    Line,
    Q,
    board,
    latency_panel,
    per_member,
    stat,
    state_timeline,
    table,
    threshold_line,
    tier_lines,
    timeseries,
    yes_no,
)
from dashboards.queries import cluster, member, mixin

M = member()
CL = mixin().cluster_label
UNARY = member('grpc_type="unary"')
NOT_OK = member('grpc_code!="OK"')


def _count_or_zero(series: str) -> str:
    """How many `series` there are per cluster, and 0 (not "no data") when there are none.

    `count` of nothing is an empty result; the `or` arm yields 0 for every cluster that has
    members, so a stat shows "0" rather than "no data" while nothing is raised or firing.
    """
    return f"count by ({CL}) ({series})\nor\ncount by ({CL}) (etcd_server_has_leader{M}) * 0"


members_up = stat(
    "How many members are up?",
    "Scrape targets of the cluster that answer (`up`), next to how many are configured. "
    "With fewer than (members + 1) / 2 up the cluster has lost quorum and refuses writes "
    "(etcdInsufficientMembers).",
    "none",
    [Q(f"sum(up{M})", "up"), Q(f"count(up{M})", "configured")],
    base="blue",
)

# Voters: every member target that is not a learner (a voter that is down still counts: it
# still votes once back, and quorum is a majority of all voters, up or not).
LEARNERS = f"(count(etcd_server_is_learner{M} == 1) or vector(0))"
VOTERS = f"(count(up{M}) - {LEARNERS})"
QUORUM = f"(floor({VOTERS} / 2) + 1)"

membership = stat(
    "How many voters and learners, and how many failures can the cluster take?",
    "Voters (member targets that are not learners, up or down), learners "
    "(etcd_server_is_learner = 1), the quorum a write needs (voters / 2 + 1, rounded down) "
    "and the voters that may fail with writes still committing (voters - quorum): the "
    "course's table, live. 3 and 4 voters both tolerate 1 failure; 5 tolerate 2. A learner "
    "adds no fault tolerance until it is promoted.",
    "none",
    [
        Q(VOTERS, "voters"),
        Q(LEARNERS, "learners"),
        Q(QUORUM, "quorum"),
        Q(f"{VOTERS} - {QUORUM}", "failures tolerated"),
    ],
    base="blue",
)

has_leader = stat(
    "Does every member have a leader?",
    "The lowest etcd_server_has_leader over the selected members: 'no' means at least one "
    "member cannot serve writes or linearizable reads (etcdNoLeader).",
    "none",
    [Q(f"min(etcd_server_has_leader{M})", "every member has a leader")],
    mappings=[yes_no()],
    base="red",
    lines=[Line(1, "green")],
)

leaders = stat(
    "How many members claim to lead?",
    "Members reporting etcd_server_is_leader = 1. Exactly one is healthy; zero is an "
    "election in progress or a lost quorum; two for long is a stale leader "
    "(etcdMultipleLeaders).",
    "none",
    [Q(f"sum(etcd_server_is_leader{M})", "leaders")],
    base="red",
    lines=[Line(1, "green"), Line(2, "red")],
)

alarms = stat(
    "Are any alarms raised?",
    "Distinct active alarms (NOSPACE, CORRUPT) from etcd_debugging_server_alarms; 0 when "
    "none. A NOSPACE alarm makes the cluster refuse writes until space is reclaimed and the "
    "alarm disarmed. etcd exposes the family from 3.6 on; before that this shows 0.",
    "none",
    [
        Q(
            _count_or_zero(
                f"count by ({CL}, alarm_type, server_id) (etcd_debugging_server_alarms{M} == 1)"
            ),
            "alarms",
        )
    ],
    lines=[Line(1, "red")],
)

firing = stat(
    "How many alerts are firing?",
    "Alerts of this cluster in state firing (Prometheus' ALERTS series, from the raftmon "
    "mixin in alerts/out/prometheus_alerts.yaml); 0 when none.",
    "none",
    [Q(_count_or_zero(f'ALERTS{{alertstate="firing", {CL}=~"$cluster"}}'), "firing")],
    lines=[Line(1, "red")],
)

db_full = stat(
    "How full is the database against its quota?",
    "Database file size over the backend quota per member (the recorded "
    "instance:etcd_mvcc_db_total_size_in_bytes:quota_ratio the etcdDatabaseQuotaLowSpace "
    "tiers compare). At 100 % the member raises NOSPACE and the cluster refuses writes.",
    "percentunit",
    [Q(f"instance:etcd_mvcc_db_total_size_in_bytes:quota_ratio{M}", "{{instance}}")],
    lines=tier_lines("databaseQuotaLowSpace.{}Ratio", "info", "warning", "critical"),
)

member_table = table(
    "Which member leads, and is every member following it?",
    "One row per member: is it the leader, does it see a leader, is it a learner, and which "
    "version and member id it runs. A member with 'has leader' = no is cut off.",
    "none",
    [
        Q(f"etcd_server_is_leader{M}"),
        Q(f"etcd_server_has_leader{M}"),
        Q(f"etcd_server_is_learner{M}"),
        Q(f"etcd_server_version{M}"),
        Q(f"etcd_server_id{M}"),
    ],
    hide=["job", CL, "Value #D", "Value #E"],
    rename={
        "instance": "member",
        "Value #A": "leader",
        "Value #B": "has leader",
        "Value #C": "learner",
        "server_version": "version",
        "server_id": "member id",
    },
    mappings=[yes_no(bad=None)],
)

who_leads = state_timeline(
    "Which member led, and when?",
    "etcd_server_is_leader per member over time: each change of colour is an election. "
    "Read it against the fault rows to see which fault moved leadership.",
    "none",
    [Q(f"etcd_server_is_leader{M}", "{{instance}}")],
    mapping={
        "type": "value",
        "options": {
            "0": {"text": "follower", "color": "transparent", "index": 0},
            "1": {"text": "leader", "color": "blue", "index": 1},
        },
    },
)

leader_changes = timeseries(
    "Are leader changes under one per minute?",
    "Leader changes per minute counted once per cluster (the recorded "
    "cluster:etcd_server_leader_changes_seen:per_minute, a 5-minute average). Above the "
    "line - the course's one per minute - the network or the disk is in serious trouble "
    "and etcdLeaderChangesTooFrequent fires. Needs alerts/out/prometheus_rules.yaml loaded.",
    "short",
    [
        Q(
            f"cluster:etcd_server_leader_changes_seen:per_minute{cluster()}",
            "{{" + CL + "}} changes/min",
        )
    ],
    lines=threshold_line("leaderChangesTooFrequent.perMinute"),
)

proposals_rate = timeseries(
    "Are proposals being committed and applied?",
    "Raft entries committed and applied per second per member (the slope of the commit and "
    "applied indexes). Both lines should track the write load; committed without applied "
    "means the state machine is stuck.",
    "ops",
    [
        per_member("etcd_server_proposals_committed_total", "committed"),
        per_member("etcd_server_proposals_applied_total", "applied"),
    ],
)

proposals_pending = timeseries(
    "Are proposals piling up?",
    "Proposals waiting to commit per member (etcd_server_proposals_pending). A queue that "
    "keeps growing means the cluster is overloaded or cannot reach quorum "
    "(etcdProposalsPendingGrowing).",
    "short",
    [Q(f"etcd_server_proposals_pending{M}", "{{instance}} pending")],
    lines=threshold_line("proposalsPending.minPending", "orange"),
)

proposals_failed = timeseries(
    "Are proposals failing?",
    "Failed proposals per second per member: dropped by Raft (no leader, leader transfer) or "
    "timed out before they were applied. Any sustained rate means clients see errors "
    "(etcdHighNumberOfFailedProposals).",
    "cps",
    [per_member("etcd_server_proposals_failed_total", "failed")],
)

apply_lag = timeseries(
    "Is apply keeping up with commit?",
    "Committed minus applied index per member: entries agreed on but not yet in the key-value "
    "store. It should stay small (etcd: 'within a few thousands even under high load'); "
    "above the line and growing, etcdCommitApplyLagGrowing fires.",
    "short",
    [
        Q(
            f"etcd_server_proposals_committed_total{M}\n-\netcd_server_proposals_applied_total{M}",
            "{{instance}} lag",
        )
    ],
    lines=threshold_line("commitApplyLag.minEntries", "orange"),
)

requests = timeseries(
    "Which requests are clients sending?",
    "Unary requests started per second, by gRPC method, summed over the selected members "
    "(grpc_server_started_total; the JSON gateway counts under etcd's gRPC names).",
    "reqps",
    [
        Q(
            f"sum by (grpc_service, grpc_method) "
            f"(rate(grpc_server_started_total{UNARY}[$__rate_interval]))",
            "{{grpc_method}}",
        )
    ],
    stack=True,
)

errors = timeseries(
    "Which requests fail, and with what code?",
    "Requests completed with a non-OK gRPC code per second, by method and code. "
    "Canceled/Unavailable on Watch and LeaseKeepAlive are clients leaving, not failures.",
    "reqps",
    [
        Q(
            f"sum by (grpc_method, grpc_code) "
            f"(rate(grpc_server_handled_total{NOT_OK}[$__rate_interval]))",
            "{{grpc_method}} {{grpc_code}}",
        )
    ],
)

error_ratio = timeseries(
    "Are request errors under 1 %?",
    "Share of requests failing with a server-side code, per member and method (the recorded "
    "instance_grpc_method:grpc_server_handled:error_ratio, client cancels of streams left "
    "out). The lines are the etcdHighNumberOfFailedGRPCRequests warning and critical tiers.",
    "percentunit",
    [
        Q(
            f"instance_grpc_method:grpc_server_handled:error_ratio{M}",
            "{{instance}} {{grpc_method}}",
        )
    ],
    lines=tier_lines("failedGRPCRequests.{}Ratio"),
)

db_size = timeseries(
    "Is the database growing toward its quota?",
    "Database file size, the part of it in use, and the backend quota, per member. Size far "
    "above in-use means free pages a defragmentation would give back; size reaching the quota "
    "raises NOSPACE.",
    "bytes",
    [
        Q(f"etcd_mvcc_db_total_size_in_bytes{M}", "{{instance}} size"),
        Q(f"etcd_mvcc_db_total_size_in_use_in_bytes{M}", "{{instance}} in use"),
        Q(f"max(etcd_server_quota_backend_bytes{M})", "quota"),
    ],
)

alarm_table = table(
    "Which alarms are raised, and on which member?",
    "Every active alarm (etcd_debugging_server_alarms = 1) with its type and the member id it "
    "was raised for. Empty while no alarm is raised.",
    "none",
    [Q(f"etcd_debugging_server_alarms{M} == 1")],
    hide=["job", CL, "Value"],
    rename={"instance": "reported by", "server_id": "member id", "alarm_type": "alarm"},
)

alert_table = table(
    "Which alerts are firing?",
    "Firing alerts of this cluster with their severity and member (Prometheus' ALERTS series). "
    "Each alert's runbook is linked from its runbook_url annotation in Alertmanager.",
    "none",
    [Q(f'ALERTS{{alertstate="firing", {CL}=~"$cluster"}}')],
    hide=["job", "Value", "alertstate"],
)

loop_lag = latency_panel(
    "Is the member's event loop keeping time?",
    "How late each member's periodic Raft tick ran (raftmon_server_event_loop_lag_seconds, "
    "raftmon only). A stalled asyncio loop delays heartbeats and triggers elections even "
    "with a fast disk and network.",
    "raftmon_server_event_loop_lag_seconds",
    M,
    quantiles=(0.99,),
)

dashboard = board(
    "overview",
    __doc__,
    rows=[
        (5, [members_up, membership, has_leader, leaders, alarms, firing, db_full]),
        (8, [member_table, who_leads]),
        (8, [leader_changes, FAULTS]),
        (8, [proposals_rate, apply_lag]),
        (8, [proposals_pending, proposals_failed]),
        (8, [requests, errors]),
        (8, [error_ratio, db_size]),
        (7, [alarm_table, alert_table, loop_lag]),
    ],
)
