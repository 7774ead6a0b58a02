"""Scrape-time collectors: member state, OS figures, and etcd's suffix-less counters.

Everything here runs when Prometheus scrapes, never on the request path. Families are
built from the catalog specs, so a name, help text or label name cannot drift from it.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import catalog as C
from exporter.catalog import Kind, MetricSpec
from exporter.state import RAFT_ROLES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from prometheus_client.registry import CollectorRegistry

    from exporter.state import MemberStateSource

__all__ = ["BareCounter", "OsCollector", "StateCollector", "new_family", "peer_label"]

log = logging.getLogger(__name__)

_V = TypeVar("_V")

_UINT64_MAX = float(2**64 - 1)  # what Go's collector reports for an unlimited rlimit


def peer_label(member_id: int) -> str:
    """A member id as etcd renders it in labels (`%x`, no padding)."""
    return format(member_id, "x")


def new_family(spec: MetricSpec) -> Metric:
    """An empty family for `spec`, named the way prometheus_client names families.

    A counter exposed as `x_total` is the family `x` with samples `x_total` (the
    convention `exposition.render` and prometheus_client's parser both rely on).
    """
    if spec.kind is Kind.COUNTER and spec.name.endswith("_total"):
        return Metric(spec.name[: -len("_total")], spec.help, "counter")
    return Metric(spec.name, spec.help, spec.kind.value)


def _add(family: Metric, spec: MetricSpec, value: float, *label_values: str) -> None:
    family.add_sample(spec.name, dict(zip(spec.labels, label_values, strict=True)), value)


class BareCounter(Collector):
    """An event counter exposed without `_total`, as etcd names a few of its counters.

    prometheus_client's Counter always appends `_total`; this wraps an unregistered one
    (keeping its thread-safe increments and label children) and renames the samples.
    """

    def __init__(self, spec: MetricSpec, registry: CollectorRegistry | None) -> None:
        if spec.kind is not Kind.COUNTER or spec.name.endswith("_total"):
            raise ValueError(f"{spec.name} is not a suffix-less counter")
        self.spec = spec
        self.counter = Counter(spec.name, spec.help, spec.labels, registry=None)
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Counter:
        """The child for these label values (bind once, keep the handle)."""
        return self.counter.labels(*values)

    def inc(self, amount: float = 1) -> None:
        """Increment the unlabelled counter."""
        self.counter.inc(amount)

    def collect(self) -> Iterable[Metric]:
        family = Metric(self.spec.name, self.spec.help, "counter")
        for metric in self.counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    family.add_sample(self.spec.name, sample.labels, sample.value)
        return [family]


class OsCollector(Collector):
    """os_fd_used, os_fd_limit (etcd's) and process_virtual_memory_max_bytes (Go's)."""

    def __init__(self, registry: CollectorRegistry | None, proc_fd_dir: str = "/proc/self/fd"):
        self._fd_dir = proc_fd_dir
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        families: list[Metric] = []
        try:
            used = len(os.listdir(self._fd_dir))
        except OSError:  # no /proc (not Linux): leave the family out rather than lie
            pass
        else:
            families.append(_single(C.OS_FD_USED, used))
        soft_nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        families.append(_single(C.OS_FD_LIMIT, _rlimit(soft_nofile)))
        soft_as, _ = resource.getrlimit(resource.RLIMIT_AS)
        families.append(_single(C.PROCESS_VSIZE_MAX, _rlimit(soft_as)))
        return families


def _rlimit(value: int) -> float:
    return _UINT64_MAX if value == resource.RLIM_INFINITY else float(value)


def _single(spec: MetricSpec, value: float, *label_values: str) -> Metric:
    family = new_family(spec)
    _add(family, spec, value, *label_values)
    return family


class StateCollector(Collector):
    """Reads a `MemberStateSource` at scrape time and yields the STATE families.

    Each source method feeds its own families; if one raises, only those are missing
    from that scrape (and a WARNING says why), so one broken component cannot blank
    the whole /metrics page. The source can be swapped (`source` attribute) while the
    member runs, e.g. attached after the driver is built.
    """

    def __init__(self, source: MemberStateSource | None = None) -> None:
        self.source = source
        self._lock = threading.Lock()  # one scrape at a time reads the source

    def collect(self) -> Iterable[Metric]:
        source = self.source
        if source is None:
            return []
        families: list[Metric] = []
        with self._lock:
            for build in (_raft, _server, _mvcc, _peers, _faults):
                try:
                    families.extend(build(source))
                except Exception:
                    log.warning("metrics state read failed part=%s", build.__name__, exc_info=True)
        return families


def _bool(flag: bool) -> float:
    return 1.0 if flag else 0.0


def _raft(source: MemberStateSource) -> Iterator[Metric]:
    raft = source.raft_state()
    yield _single(C.HAS_LEADER, _bool(raft.lead != 0))
    yield _single(C.IS_LEADER, _bool(raft.role == "leader"))
    yield _single(C.IS_LEARNER, _bool(raft.is_learner))
    yield _single(C.PROPOSALS_COMMITTED, raft.commit_index)
    yield _single(C.PROPOSALS_APPLIED, raft.applied_index)
    yield _single(C.RAFT_TERM, raft.term)
    role = new_family(C.RAFT_ROLE)
    for name in RAFT_ROLES:
        _add(role, C.RAFT_ROLE, _bool(raft.role == name), name)
    yield role
    yield _single(C.RAFT_ELECTIONS, raft.elections_started)
    yield _single(C.RAFT_PRE_VOTES, raft.pre_votes_started)
    yield _single(C.RAFT_PROPOSALS_DROPPED, raft.proposals_dropped)
    yield _single(C.RAFT_MESSAGES_DROPPED, raft.messages_dropped)
    yield _per_peer(C.RAFT_FOLLOWER_MATCH, raft.follower_match, float)


def _server(source: MemberStateSource) -> Iterator[Metric]:
    server = source.server_state()
    yield _single(C.SERVER_ID, 1, peer_label(server.member_id))
    yield _single(C.SERVER_VERSION, 1, server.server_version)
    yield _single(C.CLUSTER_VERSION, 1, server.cluster_version)
    yield _single(C.QUOTA_BACKEND_BYTES, server.quota_backend_bytes)
    yield _single(C.PROPOSALS_PENDING, server.proposals_pending)
    yield _single(C.LEADER_CHANGES, server.leader_changes_seen)
    yield _single(C.PROPOSALS_FAILED, server.proposals_failed)
    yield _single(C.HEARTBEAT_SEND_FAILURES, server.heartbeat_send_failures)
    yield _single(C.SLOW_APPLY, server.slow_applies)
    yield _single(C.SLOW_READ_INDEXES, server.slow_read_indexes)
    yield _single(C.READ_INDEXES_FAILED, server.read_indexes_failed)
    yield _single(C.PROPOSALS_SENT_AGAIN, server.proposals_sent_again)
    yield _single(C.DUPLICATES_SKIPPED, server.duplicates_skipped)
    yield _single(C.SNAPSHOT_APPLY_IN_PROGRESS, _bool(server.snapshot_apply_in_progress))
    yield _single(C.DEFRAG_INFLIGHT, _bool(server.defrag_inflight))
    alarms = new_family(C.ALARMS)
    for member_id, alarm_type in sorted(set(server.alarms)):
        _add(alarms, C.ALARMS, 1, peer_label(member_id), alarm_type)
    yield alarms


def _mvcc(source: MemberStateSource) -> Iterator[Metric]:
    mvcc = source.mvcc_state()
    for spec, value in (
        (C.DB_TOTAL_SIZE, mvcc.db_total_size_bytes),
        (C.DB_TOTAL_SIZE_DEBUGGING, mvcc.db_total_size_bytes),
        (C.DB_SIZE_IN_USE, mvcc.db_size_in_use_bytes),
        (C.MVCC_KEYS, mvcc.keys),
        (C.MVCC_CURRENT_REVISION, mvcc.current_revision),
        (C.MVCC_COMPACT_REVISION, mvcc.compact_revision),
        (C.MVCC_PUT, mvcc.put_total),
        (C.DEBUG_PUT, mvcc.put_total),
        (C.MVCC_RANGE, mvcc.range_total),
        (C.DEBUG_RANGE, mvcc.range_total),
        (C.MVCC_DELETE, mvcc.delete_total),
        (C.DEBUG_DELETE, mvcc.delete_total),
        (C.MVCC_TXN, mvcc.txn_total),
        (C.DEBUG_TXN, mvcc.txn_total),
        (C.MVCC_PUT_SIZE, mvcc.total_put_size_bytes),
        (C.MVCC_COMPACTION_KEYS, mvcc.compaction_keys_total),
        (C.MVCC_EVENTS, mvcc.events_total),
        (C.MVCC_WATCHERS, mvcc.watchers),
        (C.MVCC_WATCH_STREAMS, mvcc.watch_streams),
        (C.MVCC_SLOW_WATCHERS, mvcc.slow_watchers),
        (C.MVCC_PENDING_EVENTS, mvcc.pending_events),
    ):
        yield _single(spec, value)


def _peers(source: MemberStateSource) -> Iterator[Metric]:
    peers = source.peer_states()
    local = peer_label(source.server_state().member_id)
    ordered = sorted(peers.items())
    for spec, attribute in (
        (C.PEER_SENT_BYTES, "sent_bytes"),
        (C.PEER_RECEIVED_BYTES, "received_bytes"),
        (C.PEER_SENT_FAILURES, "sent_failures"),
        (C.PEER_RECEIVED_FAILURES, "received_failures"),
        (C.SNAPSHOT_SEND_INFLIGHTS, "snapshot_send_inflight"),
        (C.SNAPSHOT_RECEIVE_INFLIGHTS, "snapshot_receive_inflight"),
    ):
        family = new_family(spec)
        for peer_id, peer in ordered:
            _add(family, spec, getattr(peer, attribute), peer_label(peer_id))
        yield family
    # etcd sets active_peers{Local,Remote} to 1 while connected and 0 after a disconnect;
    # a peer never connected has no series. raftmon keeps a series for every known peer.
    active = new_family(C.ACTIVE_PEERS)
    disconnected = new_family(C.DISCONNECTED_PEERS)
    for peer_id, peer in ordered:
        if peer_id == 0:
            continue  # the "unknown sender" pseudo-peer has bytes, not connections
        _add(active, C.ACTIVE_PEERS, _bool(peer.active), local, peer_label(peer_id))
        _add(disconnected, C.DISCONNECTED_PEERS, peer.disconnects, local, peer_label(peer_id))
    yield active
    yield disconnected


def _faults(source: MemberStateSource) -> Iterator[Metric]:
    faults = source.fault_state()
    yield _single(C.FAULT_WAL_FSYNC_DELAY, faults.wal_fsync_delay_seconds)
    yield _single(C.FAULT_TICKS_PAUSED, _bool(faults.raft_ticks_paused))
    # One series per known peer, so "no fault" reads 0 rather than "no data".
    peer_ids = {p for p in source.peer_states() if p != 0}
    peer_ids.update(faults.peer_delay_seconds, faults.peer_drop)
    yield _per_peer(
        C.FAULT_PEER_DELAY, {p: faults.peer_delay_seconds.get(p, 0.0) for p in peer_ids}, float
    )
    yield _per_peer(C.FAULT_PEER_DROP, {p: faults.peer_drop.get(p, False) for p in peer_ids}, _bool)


def _per_peer(spec: MetricSpec, values: Mapping[int, _V], convert: Callable[[_V], float]) -> Metric:
    family = new_family(spec)
    for peer_id, value in sorted(values.items()):
        _add(family, spec, convert(value), peer_label(peer_id))
    return family


# Keep the interpreter version handy for the info gauge MemberMetrics sets once.
PYTHON_VERSION = ".".join(str(part) for part in sys.version_info[:3])
