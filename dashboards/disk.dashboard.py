"""Disk: is fsync fast enough for Raft, and is the backend keeping up?

The course: "an etcd with fsync above 25 ms on average is an etcd about to have problems".
The 25 ms line is the etcdWALFsyncSlow threshold, read from the mixin config.
"""

from dashboards.panels import (
    FAULTS,
    Q,
    board,
    heatmap,
    latency_panel,
    per_member,
    tier_lines,
    timeseries,
    wal_fsync_panel,
)
from dashboards.queries import member

M = member()
WAL_FSYNC = "etcd_disk_wal_fsync_duration_seconds"

fsync = wal_fsync_panel(
    "Is WAL fsync under 25 ms?",
    "WAL fsync latency per member: mean, median and p99 over the rate interval. Every Raft "
    "entry is fsynced before it is acknowledged, so this is the floor under every write. "
    "The dashed line is the course's 25 ms: above it on average (5 minutes, the recorded "
    "instance:etcd_disk_wal_fsync_duration_seconds:mean), etcdWALFsyncSlow fires.",
    quantiles=(0.5, 0.99),
)

fsync_heatmap = heatmap(
    "How are WAL fsync latencies distributed?",
    "fsyncs per second in each latency bucket (1 ms .. 8 s, doubling), summed over the "
    "selected members. A second band above the main one is a slow disk or an injected delay.",
    "s",
    Q(
        f"sum by (le) (rate({WAL_FSYNC}_bucket{M}[$__rate_interval]))",
        "{{le}}",
    ),
)

fsync_p99_tiers = latency_panel(
    "Is p99 WAL fsync below the alert tiers?",
    "p99 WAL fsync per member against the etcdHighFsyncDurations tiers: warning when more "
    "than 1 % of fsyncs exceed a heartbeat interval, critical beyond half an election timeout.",
    WAL_FSYNC,
    M,
    quantiles=(0.99,),
    lines=tier_lines("highFsyncDurations.{}Seconds"),
)

commit = latency_panel(
    "Is backend commit p99 below the alert tiers?",
    "p99 of one backend commit (a SQLite transaction of an apply batch in raftmon, a bbolt "
    "commit in etcd) per member, with the etcdHighCommitDurations tiers. Slow commits stall "
    "applies and therefore linearizable reads.",
    "etcd_disk_backend_commit_duration_seconds",
    M,
    quantiles=(0.99,),
    lines=tier_lines("highCommitDurations.{}Seconds"),
)


def _mean(metric: str) -> str:
    return (
        f"sum by (instance) (increase({metric}_sum{M}[$__rate_interval]))\n/\n"
        f"sum by (instance) (increase({metric}_count{M}[$__rate_interval]))"
    )


snapshots = timeseries(
    "How long do snapshots take?",
    "Mean duration of the snapshots taken in each interval, per member: the backend image "
    "sent to a lagging follower, the Raft snapshot saved to disk, and a received database "
    "saved by a follower. Gaps mean no snapshot in that interval.",
    "s",
    [
        Q(_mean("etcd_disk_backend_snapshot_duration_seconds"), "{{instance}} backend image"),
        Q(_mean("etcd_debugging_snap_save_total_duration_seconds"), "{{instance}} raft snapshot"),
        Q(_mean("etcd_snap_db_save_total_duration_seconds"), "{{instance}} received db save"),
    ],
)

wal_bytes = timeseries(
    "How many bytes does the WAL write?",
    "WAL bytes written per second per member (etcd_disk_wal_write_bytes_total, a gauge that "
    "only grows while the member runs). With the fsync rate it gives the mean write size.",
    "Bps",
    [per_member("etcd_disk_wal_write_bytes_total")],
)

fsync_rate = timeseries(
    "How many fsyncs per second does the WAL issue?",
    "WAL fsyncs per second per member. Group commit batches many entries into one fsync, so "
    "this stays below the proposal rate under load.",
    "ops",
    [Q(f"rate({WAL_FSYNC}_count{M}[$__rate_interval])", "{{instance}}")],
)

slow = timeseries(
    "Are applies or heartbeats late because of the disk?",
    "Applies slower than 100 ms and leader heartbeats sent later than twice the heartbeat "
    "interval, per second per member. etcd's help text for both: 'likely overloaded from "
    "slow disk'. Late heartbeats make followers start elections.",
    "cps",
    [
        per_member("etcd_server_slow_apply_total", "slow apply"),
        per_member("etcd_server_heartbeat_send_failures_total", "late heartbeat"),
    ],
)

dashboard = board(
    "disk",
    __doc__,
    faults=("fsync", "ticks"),
    rows=[
        (9, [fsync, fsync_heatmap]),
        (6, [FAULTS]),
        (8, [fsync_p99_tiers, commit]),
        (8, [fsync_rate, wal_bytes]),
        (8, [snapshots, slow]),
    ],
)
