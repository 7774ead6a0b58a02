"""The load generator's own Prometheus metrics: client latency beside the server's on a dashboard.

Families (own `CollectorRegistry`, never the global one):

- `raftmon_loadgen_request_duration_seconds{op,outcome}` histogram: client-side latency
  of every request, success or not (open loop: from the intended send time).
- `raftmon_loadgen_requests_total{op,outcome}` counter.
- `raftmon_loadgen_inflight_requests` gauge: requests sent and not yet answered.
- `raftmon_loadgen_target_rate` gauge: the open-loop target in requests/s (0 = closed loop).
- `raftmon_loadgen_watch_event_latency_seconds` histogram: put-ack -> watch event.

`op` is put, range, txn-put or lease-keepalive; `outcome` is `success` or an error
kind from `loadgen.errors.ERROR_KINDS`.

With `--workers N` each worker fills a registry of its own and ships a snapshot of it
to the parent about once a second; the parent serves the sum (`MergedCollector`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

REQUEST_DURATION = "raftmon_loadgen_request_duration_seconds"
REQUESTS_TOTAL = "raftmon_loadgen_requests_total"
INFLIGHT = "raftmon_loadgen_inflight_requests"
TARGET_RATE = "raftmon_loadgen_target_rate"
WATCH_EVENT_LATENCY = "raftmon_loadgen_watch_event_latency_seconds"
METRIC_NAMES = (REQUEST_DURATION, REQUESTS_TOTAL, INFLIGHT, TARGET_RATE, WATCH_EVENT_LATENCY)

# 0.5 ms .. ~16 s doubling, like etcd's request-duration buckets but starting lower,
# since loopback requests answer in about a millisecond.
BUCKETS = tuple(0.0005 * 2**i for i in range(16))

# A snapshot is plain data so it pickles between processes:
# [(family name, documentation, type, [(sample name, labels, value), ...]), ...]
Snapshot = list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]


class LoadMetrics:
    """The families above on one registry; label children are bound once per (op, outcome)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            REQUEST_DURATION,
            "Client-side latency of load generator requests by operation and outcome "
            "(open loop: measured from the intended send time).",
            ["op", "outcome"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            REQUESTS_TOTAL.removesuffix("_total"),
            "Requests completed by the load generator by operation and outcome.",
            ["op", "outcome"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            INFLIGHT, "Requests sent and not yet answered.", registry=self.registry
        )
        self.target_rate = Gauge(
            TARGET_RATE,
            "Open-loop target rate in requests per second (0 in closed loop).",
            registry=self.registry,
        )
        self.watch_latency = Histogram(
            WATCH_EVENT_LATENCY,
            "Latency from a put's acknowledgement to its watch event reaching a watcher.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, op: str, outcome: str, seconds: float) -> None:
        key = (op, outcome)
        children = self._children.get(key)
        if children is None:
            children = (self.duration.labels(op, outcome), self.requests.labels(op, outcome))
            self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def bind(self, ops: Iterable[str], outcome: str = "success") -> None:
        """Create the children up front so a scrape shows the series from the first second."""
        for op in ops:
            self.observe_noop(op, outcome)

    def observe_noop(self, op: str, outcome: str) -> None:
        key = (op, outcome)
        if key not in self._children:
            self._children[key] = (
                self.duration.labels(op, outcome),
                self.requests.labels(op, outcome),
            )

    def snapshot(self) -> Snapshot:
        return snapshot(self.registry)


def snapshot(registry: CollectorRegistry) -> Snapshot:
    """Plain-data copy of every family in `registry` (without `_created` samples)."""
    out: Snapshot = []
    for family in registry.collect():
        samples = [
            (s.name, dict(s.labels), float(s.value))
            for s in family.samples
            if not s.name.endswith("_created")
        ]
        out.append((family.name, family.documentation, family.type, samples))
    return out


class MergedCollector(Collector):
    """Serves the sum of the latest snapshot of each worker (counters, gauges, buckets all add)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, Snapshot] = {}

    def update(self, worker: int, snap: Snapshot) -> None:
        with self._lock:
            self._latest[worker] = snap

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snaps = list(self._latest.values())
        families: dict[
            str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]
        ] = {}
        for snap in snaps:
            for name, doc, mtype, samples in snap:
                _, _, sums = families.setdefault(name, (doc, mtype, {}))
                for sample_name, labels, value in samples:
                    key = (sample_name, tuple(sorted(labels.items())))
                    sums[key] = sums.get(key, 0.0) + value
        for name, (doc, mtype, sums) in families.items():
            metric = Metric(name, doc, mtype)
            for (sample_name, label_pairs), value in sums.items():
                metric.add_sample(sample_name, dict(label_pairs), value)
            yield metric


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> Any:
    """Start the /metrics HTTP server in a thread; returns the server (call `.shutdown()`)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
