"""Per-member figures straight from /metrics, so the demo report works without Prometheus.

A `MemberSnapshot` holds the counters the report needs; the difference of two snapshots
gives the fsync average and p99 over exactly the stretch between them (p99 from the
histogram buckets, interpolated inside the bucket as histogram_quantile does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lab.procs import http_get
from loadgen.client import parse_metrics

if TYPE_CHECKING:
    import ssl

FSYNC = "etcd_disk_wal_fsync_duration_seconds"


@dataclass
class MemberSnapshot:
    name: str
    up: bool
    fsync_sum: float = 0.0
    fsync_count: float = 0.0
    fsync_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    committed: float = 0.0
    applied: float = 0.0
    failed: float = 0.0
    pending: float = 0.0
    leader_changes: float = 0.0
    is_leader: bool = False


def snapshot(name: str, metrics_url: str, context: ssl.SSLContext | None = None) -> MemberSnapshot:
    body = http_get(metrics_url + "/metrics", timeout=3.0, context=context)
    if body is None:
        return MemberSnapshot(name, up=False)
    samples = parse_metrics(body.decode(errors="replace"))
    buckets: dict[float, float] = {}
    for s in samples.samples:
        if s.name == FSYNC + "_bucket":
            buckets[float(s.labels["le"])] = s.value
    return MemberSnapshot(
        name=name,
        up=True,
        fsync_sum=samples.sum(FSYNC + "_sum"),
        fsync_count=samples.sum(FSYNC + "_count"),
        fsync_buckets=buckets,
        committed=samples.sum("etcd_server_proposals_committed_total"),
        applied=samples.sum("etcd_server_proposals_applied_total"),
        failed=samples.sum("etcd_server_proposals_failed_total"),
        pending=samples.sum("etcd_server_proposals_pending"),
        leader_changes=samples.sum("etcd_server_leader_changes_seen_total"),
        is_leader=samples.sum("etcd_server_is_leader") == 1.0,
    )


@dataclass(frozen=True)
class FsyncStats:
    count: int
    mean: float | None  # seconds
    p99: float | None  # seconds


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative `le -> count` buckets (None when empty)."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    total = buckets[edges[-1]]
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower_edge  # Prometheus answers the highest finite bucket's edge
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return edges[-1]


def fsync_between(before: MemberSnapshot, after: MemberSnapshot) -> FsyncStats:
    count = after.fsync_count - before.fsync_count
    if not (before.up and after.up) or count <= 0:
        return FsyncStats(0, None, None)
    delta = {
        le: after.fsync_buckets.get(le, 0.0) - before.fsync_buckets.get(le, 0.0)
        for le in after.fsync_buckets
    }
    return FsyncStats(
        int(count), (after.fsync_sum - before.fsync_sum) / count, quantile(0.99, delta)
    )
