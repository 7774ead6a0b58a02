"""MemberMetrics: every family of one member on its own registry, with hot-path handles.

One `MemberMetrics` per member (tests build as many as they like, each on its own
`CollectorRegistry`). Construction builds every family of the catalog and binds the
label children the member will use, so the request path only calls `.inc()` /
`.observe()` on objects it already holds: no `.labels(...)`, no dict built per call.

Three ways values get in:
- hot-path handles, `request_*` and `stream_*` helpers for the JSON gateway (gRPC
  families, request duration, client bytes of unary calls and of stream messages);
- observer hooks (`on_fsync`, `on_commit`, `on_rtt`, ...) with the method names the WAL,
  snapshotter, MVCC store and transport call, so `MemberMetrics` can be passed to them as
  their `observer` directly;
- scrape-time reads of a `MemberStateSource` (`attach_state`) for what the member already
  counts (Raft status, MVCC statistics, peer bytes, faults).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

from exporter import catalog as C
from exporter.catalog import Kind, MetricSpec
from exporter.collectors import PYTHON_VERSION, BareCounter, OsCollector, StateCollector, peer_label
from exporter.rpc import ClientTraffic, GatewayCollector, Rpc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from exporter.state import MemberStateSource

__all__ = ["MemberMetrics", "RequestDuration", "Rpc"]

# The JSON gateway sends no client-api-version metadata: etcd counts it as "unknown".
_UNARY = ("unknown", "unary")

log = logging.getLogger(__name__)

# etcd exposes no `_created` series; this must run before any Counter/Histogram exists.
# NB: process-wide (a prometheus_client switch), harmless for other registries.
_disable_created: Callable[[], None] = disable_created_metrics
_disable_created()


@dataclass(frozen=True, slots=True)
class RequestDuration:
    """The two children of a duration histogram for one type: success true / false."""

    ok: Histogram
    failed: Histogram


class _BindOnFirstUse(dict[str, RequestDuration]):
    """type -> RequestDuration; a missing type is bound once, on its first lookup.

    Lookups of bound types are plain dict lookups (no per-call binding); only
    REQUEST_TYPES can be bound, so a typo fails loudly instead of adding a series.
    """

    def __init__(self, bind: Callable[[str], RequestDuration]) -> None:
        super().__init__()
        self._bind = bind

    def __missing__(self, kind: str) -> RequestDuration:
        if kind not in C.REQUEST_TYPES:
            raise KeyError(f"{kind!r} is not one of exporter.catalog.REQUEST_TYPES")
        bound = self[kind] = self._bind(kind)
        return bound


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter | BareCounter:
    assert spec.kind is Kind.COUNTER, spec.name
    if spec.name.endswith("_total"):
        return Counter(spec.name, spec.help, spec.labels, registry=registry)
    return BareCounter(spec, registry)


def _total_counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    counter = _counter(spec, registry)
    assert isinstance(counter, Counter), spec.name
    return counter


def _bare_counter(spec: MetricSpec, registry: CollectorRegistry) -> BareCounter:
    counter = _counter(spec, registry)
    assert isinstance(counter, BareCounter), spec.name
    return counter


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    assert spec.kind is Kind.HISTOGRAM, spec.name
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert spec.kind is Kind.GAUGE, spec.name
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


@dataclass(frozen=True, slots=True)
class _SnapshotChildren:
    """One peer's snapshot transfer series in one direction: success, failures, duration."""

    ok: Counter
    failed: Counter
    duration: Histogram

    def finished(self, seconds: float, ok: bool) -> None:
        """As etcd: a success counts and times the transfer, a failure only counts."""
        if ok:
            self.ok.inc()
            self.duration.observe(seconds)
        else:
            self.failed.inc()


@dataclass(frozen=True, slots=True)
class _SnapshotFamilies:
    """The three snapshot transfer families of one direction (send or receive)."""

    ok: BareCounter
    failed: BareCounter
    duration: Histogram

    def labels(self, peer: str) -> _SnapshotChildren:
        return _SnapshotChildren(
            self.ok.labels(peer), self.failed.labels(peer), self.duration.labels(peer)
        )


class _Observes:
    """A hook that is one observation of one histogram of a MemberMetrics."""

    __slots__ = ("_family",)

    def __init__(self, family: Callable[[MemberMetrics], Histogram]) -> None:
        self._family = family

    @overload
    def __get__(self, obj: None, owner: type) -> _Observes: ...

    @overload
    def __get__(self, obj: MemberMetrics, owner: type | None = None) -> Callable[[float], None]: ...

    def __get__(
        self, obj: MemberMetrics | None, owner: type | None = None
    ) -> _Observes | Callable[[float], None]:
        return self if obj is None else self._family(obj).observe


class _Counts:
    """A hook that is one increment of one counter of a MemberMetrics."""

    __slots__ = ("_family",)

    def __init__(self, family: Callable[[MemberMetrics], Counter | BareCounter]) -> None:
        self._family = family

    @overload
    def __get__(self, obj: None, owner: type) -> _Counts: ...

    @overload
    def __get__(self, obj: MemberMetrics, owner: type | None = None) -> Callable[[], None]: ...

    def __get__(
        self, obj: MemberMetrics | None, owner: type | None = None
    ) -> _Counts | Callable[[], None]:
        return self if obj is None else self._family(obj).inc


class MemberMetrics:
    """All metric families of one member, and the handles that feed them."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        state: MemberStateSource | None = None,
        peer_ids: Iterable[int] = (),
        process_metrics: bool = True,
        extensive: bool = False,
    ) -> None:
        """Build every family on `registry` (a fresh one if None) and bind children.

        `process_metrics=False` leaves out process_* and os_fd_* (useful when several
        members share one test process and the figures would all be the same).
        `extensive` is etcd's --metrics=extensive: the families gated by it
        (catalog `only_with`, grpc_server_handling_seconds) exist and are observed.
        """
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # ---- disk: WAL, backend, snapshots (observer hooks below) -------------
        self.wal_fsync = _histogram(C.WAL_FSYNC, r)
        self.wal_write = _histogram(C.WAL_WRITE, r)
        self.wal_bytes = _gauge(C.WAL_WRITE_BYTES, r)  # a gauge, as etcd
        self.backend_commit = _histogram(C.BACKEND_COMMIT, r)
        self.backend_defrag = _histogram(C.BACKEND_DEFRAG, r)
        self.backend_snapshot = _histogram(C.BACKEND_SNAPSHOT, r)
        self.snap_fsync = _histogram(C.SNAP_FSYNC, r)
        self.snap_db_fsync = _histogram(C.SNAP_DB_FSYNC, r)
        self.snap_db_save = _histogram(C.SNAP_DB_SAVE, r)
        self.snap_save_total = _histogram(C.SNAP_SAVE_TOTAL, r)
        self.observe_wal_fsync = self.wal_fsync.observe  # the hottest hook, as a bound method

        # ---- server ------------------------------------------------------------
        self.apply_batch = _histogram(C.APPLY_BATCH, r)
        self.loop_lag = _histogram(C.LOOP_LAG, r)
        self.health_success = _bare_counter(C.HEALTH_SUCCESS, r)
        self.health_failures = _bare_counter(C.HEALTH_FAILURES, r)
        self.learner_promote_successes = _bare_counter(C.LEARNER_PROMOTE_SUCCESSES, r)
        _gauge(C.PYTHON_VERSION, r).labels(PYTHON_VERSION).set(1)

        # Children per request type are bound on first use (then kept): most members
        # see a handful of types, and every bound child costs ~30 lines per scrape.
        apply_hist = _histogram(C.APPLY_DURATION, r)
        self.apply_duration = _BindOnFirstUse(
            lambda op: RequestDuration(
                apply_hist.labels("v3", op, "true"), apply_hist.labels("v3", op, "false")
            )
        )
        request_hist = _histogram(C.REQUEST_DURATION, r)
        self.request_duration = _BindOnFirstUse(
            lambda kind: RequestDuration(
                request_hist.labels(kind, "true"), request_hist.labels(kind, "false")
            )
        )

        # ---- leases and compaction --------------------------------------------
        self.lease_granted = _total_counter(C.LEASE_GRANTED, r)
        self.lease_renewed = _total_counter(C.LEASE_RENEWED, r)
        self.lease_revoked = _total_counter(C.LEASE_REVOKED, r)
        self.lease_expired = _total_counter(C.LEASE_EXPIRED, r)
        self.lease_ttl = _histogram(C.LEASE_TTL, r)
        self.compaction_pause_ms = _histogram(C.MVCC_COMPACTION_PAUSE, r)
        self.compaction_total_ms = _histogram(C.MVCC_COMPACTION_TOTAL, r)
        self.hash_duration = _histogram(C.MVCC_HASH, r)
        self.hash_rev_duration = _histogram(C.MVCC_HASH_REV, r)

        # ---- client traffic and the gRPC families (plain ints, see exporter.rpc) ----
        self.extensive = extensive
        self.traffic = ClientTraffic()
        self.rpcs: dict[tuple[str, str], Rpc] = {
            (service, method): Rpc(service, method, grpc_type, extensive)
            for service, method, grpc_type in C.GRPC_METHODS
        }
        r.register(GatewayCollector(self.rpcs, self.traffic, handling=extensive))

        # ---- peers (children bound per peer by bind_peers) ----------------------
        self._peer_rtt_family = _histogram(C.PEER_RTT, r)
        self._snapshot_send_families = _SnapshotFamilies(
            _bare_counter(C.SNAPSHOT_SEND_SUCCESS, r),
            _bare_counter(C.SNAPSHOT_SEND_FAILURES, r),
            _histogram(C.SNAPSHOT_SEND_DURATION, r),
        )
        self._snapshot_receive_families = _SnapshotFamilies(
            _bare_counter(C.SNAPSHOT_RECEIVE_SUCCESS, r),
            _bare_counter(C.SNAPSHOT_RECEIVE_FAILURES, r),
            _histogram(C.SNAPSHOT_RECEIVE_DURATION, r),
        )
        self.peer_rtt: dict[int, Histogram] = {}
        self.snapshot_send: dict[int, _SnapshotChildren] = {}
        self.snapshot_receive: dict[int, _SnapshotChildren] = {}
        self.bind_peers(peer_ids)
        self._peer_refused_family = _total_counter(C.PEER_REFUSED, r)
        self.peer_refused: dict[str, Counter] = {
            reason: self._peer_refused_family.labels(reason) for reason in C.PEER_REFUSAL_REASONS
        }

        # ---- scrape-time collectors ---------------------------------------------
        self.state_collector = StateCollector(state)
        r.register(self.state_collector)
        if process_metrics:
            ProcessCollector(registry=r)
            OsCollector(r)

    # ---------------------------------------------------------------- binding
    def attach_state(self, source: MemberStateSource) -> None:
        """Read STATE families from `source` from the next scrape on."""
        self.state_collector.source = source

    def bind_peers(self, peer_ids: Iterable[int]) -> None:
        """Bind the per-peer children of `peer_ids` (idempotent; call again on member add)."""
        for peer_id in peer_ids:
            if peer_id in self.peer_rtt:
                continue
            label = peer_label(peer_id)
            self.peer_rtt[peer_id] = self._peer_rtt_family.labels(label)
            self.snapshot_send[peer_id] = self._snapshot_send_families.labels(label)
            self.snapshot_receive[peer_id] = self._snapshot_receive_families.labels(label)
            log.debug("metrics peer bound peer=%s", label)

    def rpc(self, service: str, method: str, grpc_type: str = "unary") -> Rpc:
        """The counters of one gRPC method (etcd's 41 exist from the start; others on demand).

        Call at route set-up and keep the result; this is not meant for every request.
        """
        key = (service, method)
        found = self.rpcs.get(key)
        if found is None:
            found = self.rpcs[key] = Rpc(service, method, grpc_type, self.extensive)
        return found

    # ---------------------------------------------------------------- gateway path
    # Event-loop thread only (exporter.rpc): these are plain-int increments.
    def request_started(self, rpc: Rpc, received_bytes: int) -> None:
        """A unary gateway call arrived: started, one message received, its body bytes."""
        rpc.started += 1
        rpc.msg_received += 1
        traffic = self.traffic
        traffic.requests[_UNARY] = traffic.requests.get(_UNARY, 0) + 1
        traffic.received_bytes += received_bytes

    def request_finished(
        self, rpc: Rpc, duration: RequestDuration, code: str, seconds: float, sent_bytes: int
    ) -> None:
        """A unary gateway call answered with gRPC `code` after `seconds` end to end.

        As go-grpc-prometheus, a message is counted as sent only for OK answers.
        """
        if code == "OK":
            rpc.handled_ok += 1
            rpc.msg_sent += 1
            duration.ok.observe(seconds)
        else:
            rpc.count_handled(code)
            duration.failed.observe(seconds)
        self.traffic.sent_bytes += sent_bytes

    def stream_started(self, rpc: Rpc, api_version: str = "unknown") -> None:
        """A streaming call (Watch, LeaseKeepAlive, Snapshot) opened."""
        rpc.started += 1
        self.count_client_request(api_version, "stream")

    def stream_received(self, rpc: Rpc, messages: int, nbytes: int) -> None:
        """`nbytes` of an open stream's request body read, completing `messages` messages.

        Called once per body chunk: bytes are counted as they arrive (a message may span
        chunks), messages as each is decoded (go-grpc-prometheus counts on RecvMsg).
        """
        rpc.msg_received += messages
        self.traffic.received_bytes += nbytes

    def stream_sent(self, rpc: Rpc, nbytes: int) -> None:
        """One message of `nbytes` written to an open stream (go-grpc-prometheus: SendMsg)."""
        rpc.msg_sent += 1
        self.traffic.sent_bytes += nbytes

    def stream_finished(self, rpc: Rpc, code: str) -> None:
        """A streaming call ended with gRPC `code` (Canceled when the client went away)."""
        rpc.count_handled(code)

    def call_handled(self, rpc: Rpc, seconds: float) -> None:
        """A call of `rpc` ended after `seconds`, whatever its code or type.

        grpc_server_handling_seconds, as go-grpc-prometheus observes it: a unary call
        when it answers, a stream when it ends. Front ends call it only when
        `rpc.timed` (--metrics=extensive), so a basic member pays one attribute check.
        """
        rpc.observe_handling(seconds)

    def count_client_request(self, api_version: str, kind: str) -> None:
        """One etcd_server_client_requests_total{client_api_version, type} increment."""
        key = (api_version, kind)
        requests = self.traffic.requests
        requests[key] = requests.get(key, 0) + 1

    # ---------------------------------------------------------------- layer hooks
    # The layers' observer Protocols (node/wal, node/mvcc, node/transport, node/server)
    # name events; an event that is one observation or one increment of one family is
    # declared here as that family's own method, so each event sits beside the family
    # it feeds. The rest are methods below.
    on_fsync = _Observes(lambda m: m.wal_fsync)  # etcd_disk_wal_fsync_duration_seconds
    # fsync of a .snap file / of a .snap.db file / a whole save / a received .snap.db saved
    on_snapshot_fsync = _Observes(lambda m: m.snap_fsync)
    on_snapshot_db_fsync = _Observes(lambda m: m.snap_db_fsync)
    on_snapshot_save = _Observes(lambda m: m.snap_save_total)
    on_snapshot_db_save = _Observes(lambda m: m.snap_db_save)
    on_commit = _Observes(lambda m: m.backend_commit)  # one backend transaction committed
    on_defrag = _Observes(lambda m: m.backend_defrag)  # one VACUUM
    on_backend_snapshot = _Observes(lambda m: m.backend_snapshot)  # one backend image
    on_apply = _Observes(lambda m: m.apply_batch)  # one Ready's committed entries applied
    on_loop_lag = _Observes(lambda m: m.loop_lag)  # the Raft tick ran this late
    on_hash = _Observes(lambda m: m.hash_duration)  # etcd_mvcc_hash_duration_seconds
    on_hash_rev = _Observes(lambda m: m.hash_rev_duration)
    on_lease_renewed = _Counts(lambda m: m.lease_renewed)  # the leader renewed a lease
    on_lease_revoked = _Counts(lambda m: m.lease_revoked)  # by a client or by expiry
    on_lease_expired = _Counts(lambda m: m.lease_expired)  # the leader proposed its revoke
    on_learner_promoted = _Counts(lambda m: m.learner_promote_successes)

    def on_write(self, nbytes: int, seconds: float) -> None:
        """WAL records written (etcd_disk_wal_write_bytes_total, ..._write_duration_seconds)."""
        self.wal_bytes.inc(nbytes)
        self.wal_write.observe(seconds)

    def on_apply_request(self, op: str, success: bool, seconds: float) -> None:
        """One request applied (etcd_server_apply_duration_seconds{version="v3",op,success})."""
        if op not in C.REQUEST_TYPES:
            log.warning("metrics unknown apply op=%s", op)
            return
        duration = self.apply_duration[op]
        (duration.ok if success else duration.failed).observe(seconds)

    def on_compaction_pause(self, seconds: float) -> None:
        """One compaction batch held the store (…db_compaction_pause_duration_milliseconds).

        Only for a store that compacts in several batches; see on_compaction.
        """
        self.compaction_pause_ms.observe(seconds * 1000.0)

    def on_compaction(self, seconds: float, keys: int = 0, *, batched: bool = False) -> None:
        """A whole compaction finished (…db_compaction_total_duration_milliseconds).

        node/mvcc compacts in one SQLite transaction, during which writes wait: that
        transaction is also the pause, so it is observed as one unless the store reports
        its batches itself (`batched=True` plus on_compaction_pause per batch). `keys` is
        accepted for node/mvcc's BackendObserver signature; the key count is read from
        MvccState.compaction_keys_total at scrape time.
        """
        del keys
        milliseconds = seconds * 1000.0
        self.compaction_total_ms.observe(milliseconds)
        if not batched:
            self.compaction_pause_ms.observe(milliseconds)

    def on_lease_granted(self, ttl_seconds: float) -> None:
        """A lease was granted (granted counter and the TTL histogram)."""
        self.lease_granted.inc()
        self.lease_ttl.observe(ttl_seconds)

    def on_health(self, ok: bool) -> None:
        """A /health check answered (etcd_server_health_success / _failures)."""
        (self.health_success if ok else self.health_failures).inc()

    def on_rtt(self, peer_id: int, seconds: float) -> None:
        """The peer's smoothed RTT at a monitor check, etcd 3.4's value and cadence: every
        30 s while healthy, 5 s while not (etcd_network_peer_round_trip_time_seconds{To})."""
        child = self.peer_rtt.get(peer_id)
        if child is None:
            self.bind_peers((peer_id,))
            child = self.peer_rtt[peer_id]
        child.observe(seconds)

    def on_probe(self, peer_id: int, seconds: float) -> None:
        """One probe's own round trip: no family (etcd exports only the smoothed RTT)."""
        return None

    def on_snapshot_sent(self, peer_id: int, seconds: float, ok: bool) -> None:
        """A snapshot send to `peer_id` finished (etcd_network_snapshot_send_*{To})."""
        self.bind_peers((peer_id,))
        self.snapshot_send[peer_id].finished(seconds, ok)

    def on_snapshot_received(self, peer_id: int, seconds: float, ok: bool) -> None:
        """A snapshot receive from `peer_id` finished (etcd_network_snapshot_receive_*{From})."""
        self.bind_peers((peer_id,))
        self.snapshot_receive[peer_id].finished(seconds, ok)

    def on_peer_refused(self, reason: str) -> None:
        """A peer request refused at admission (raftmon_network_peer_refused_total{reason})."""
        child = self.peer_refused.get(reason)
        if child is None:  # a reason the catalog does not list yet: still counted
            child = self.peer_refused[reason] = self._peer_refused_family.labels(reason)
        child.inc()
