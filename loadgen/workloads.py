"""The workloads: what one request of each kind sends, and what a run sets up and tears down.

A workload hands the runner one operation per ticket (`next_op(seq)` -> name, coroutine
function). The runner owns timing, recording and error counting; a workload only
sends, through a `loadgen.conn.Conn` of the run's `--protocol` (the JSON gateway or
gRPC), and raises `EtcdError` when the answer is not a success.

- put: a put (`/v3/kv/put`, `KV.Put`) of one key of the key space (random, or
  sequential with `--sequential-keys`), the value of `--val-size` bytes.
- range: a range (`/v3/kv/range`, `KV.Range`) of one key of the key space, or of
  `range KEY [END]`; serializable with `--consistency s`.
- txn-put: a txn (`/v3/kv/txn`, `KV.Txn`) whose success branch puts `--txn-ops`
  distinct keys.
- mixed: range with probability `--read-ratio`, otherwise put.
- watch: puts as above while `--watchers` streams watch the key space; each event's
  latency is from its put's acknowledgement to the event reaching the watcher.
- lease-keepalive: each client grants a lease (`--ttl`) at set-up and then refreshes
  it (`/v3/lease/keepalive`, or a round on its `LeaseKeepAlive` stream); leases are
  revoked at tear-down.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from loadgen.conn import Conn
from loadgen.connect import open_conn
from loadgen.errors import EtcdError
from loadgen.keyspace import KeySpace

if TYPE_CHECKING:
    from loadgen.config import LoadConfig, WorkerShare
    from loadgen.metrics import LoadMetrics
    from loadgen.recorder import Recorder

log = logging.getLogger(__name__)

# (conn, seq, client index); a coroutine, so a client thread can run it (`run_now`)
OpFn = Callable[[Conn, int, int], Coroutine[Any, Any, None]]


class Workload:
    """Base: a key space, key choice, and no set-up or tear-down."""

    ops: tuple[str, ...] = ()

    def __init__(self, cfg: LoadConfig, share: WorkerShare) -> None:
        self.cfg = cfg
        self.share = share
        self.keys = KeySpace(cfg)
        self.rng = random.Random(cfg.seed * 1_000_003 + share.index)
        self.serializable = cfg.consistency == "s"

    def key_index(self, seq: int) -> int:
        """Sequential keys interleave workers (seq*count+index); random keys are seeded."""
        if self.cfg.sequential_keys:
            return (seq * self.share.count + self.share.index) % self.keys.size
        return self.rng.randrange(self.keys.size)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        raise NotImplementedError

    async def setup(self, conns: list[Conn], clients: int) -> None:
        """Prepare before the clock starts (not measured)."""

    async def teardown(self) -> None:
        """Clean up after the last request (not measured)."""

    def notes(self) -> list[str]:
        return []

    # Shared operations ---------------------------------------------------------------
    async def put(self, conn: Conn, seq: int, client: int) -> None:
        await conn.put(self.key_index(seq))

    async def range(self, conn: Conn, seq: int, client: int) -> None:
        await conn.range(self.key_index(seq), serializable=self.serializable)


class PutWorkload(Workload):
    ops = ("put",)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "put", self.put


class RangeWorkload(Workload):
    ops = ("range",)

    def __init__(self, cfg: LoadConfig, share: WorkerShare) -> None:
        super().__init__(cfg, share)
        self._fixed: tuple[bytes, bytes | None] | None = None
        if cfg.range_key is not None:
            end = cfg.range_end.encode() if cfg.range_end is not None else None
            self._fixed = (cfg.range_key.encode(), end)

    async def fixed_range(self, conn: Conn, seq: int, client: int) -> None:
        assert self._fixed is not None
        key, end = self._fixed
        await conn.fixed_range(key, end, serializable=self.serializable)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "range", self.fixed_range if self._fixed is not None else self.range


class TxnPutWorkload(Workload):
    ops = ("txn-put",)

    async def txn_put(self, conn: Conn, seq: int, client: int) -> None:
        await conn.txn_put(self.key_index(seq), self.cfg.txn_ops)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "txn-put", self.txn_put


class MixedWorkload(Workload):
    ops = ("put", "range")

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        if self.rng.random() < self.cfg.read_ratio:
            return "range", self.range
        return "put", self.put


class LeaseKeepaliveWorkload(Workload):
    ops = ("lease-keepalive",)

    def __init__(self, cfg: LoadConfig, share: WorkerShare) -> None:
        super().__init__(cfg, share)
        self._leases: list[tuple[Conn, int]] = []  # client index -> (its conn, its lease)

    async def setup(self, conns: list[Conn], clients: int) -> None:
        for client in range(clients):
            conn = conns[client % len(conns)]
            lease_id = await conn.lease_grant(self.cfg.lease_ttl)
            self._leases.append((conn, lease_id))

    async def keepalive(self, conn: Conn, seq: int, client: int) -> None:
        await conn.lease_keepalive(self._leases[client][1])

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "lease-keepalive", self.keepalive

    async def teardown(self) -> None:
        for conn, lease_id in self._leases:
            try:
                await conn.lease_revoke(lease_id)
            except EtcdError as exc:
                log.warning("lease revoke failed lease=%d kind=%s", lease_id, exc.kind)


class EventMatcher:
    """Pairs put acknowledgements with watch events of the same revision.

    Two latencies per event: from the put's acknowledgement (the headline figure:
    how long after a writer knows its write is durable do watchers hear of it) and
    from the put's send (etcd's `benchmark watch-latency` definition). An event can
    reach a watcher before the put's answer reaches the client (both leave the member
    after apply); its ack latency is then 0 and it is counted as early.
    """

    def __init__(self, watchers: int, recorder: Recorder, metrics: LoadMetrics | None) -> None:
        self.watchers = watchers
        self.recorder = recorder
        self.metrics = metrics
        self._acked: dict[int, tuple[float, float]] = {}  # revision -> (sent, acked)
        self._remaining: dict[int, int] = {}
        self._early: dict[int, list[float]] = {}  # revision -> event times before the ack
        self.early = 0
        self.received = 0
        self.all_seen = asyncio.Event()
        self.all_seen.set()

    def _observe(self, from_ack: float, from_send: float) -> None:
        self.recorder.record_event(from_ack, from_send)
        if self.metrics is not None:
            self.metrics.watch_latency.observe(from_ack)

    def on_ack(self, revision: int, sent: float, acked: float) -> None:
        early = self._early.pop(revision, [])
        for seen in early:
            self._observe(0.0, max(seen - sent, 0.0))
        self.early += len(early)
        left = self.watchers - len(early)
        if left > 0:
            self._acked[revision] = (sent, acked)
            self._remaining[revision] = left
            self.all_seen.clear()

    def on_event(self, revision: int, now: float) -> None:
        self.received += 1
        times = self._acked.get(revision)
        if times is None:
            self._early.setdefault(revision, []).append(now)
            return
        sent, acked = times
        self._observe(max(now - acked, 0.0), max(now - sent, 0.0))
        left = self._remaining[revision] - 1
        if left:
            self._remaining[revision] = left
        else:
            del self._remaining[revision]
            del self._acked[revision]
            if not self._remaining:
                self.all_seen.set()

    @property
    def missing(self) -> int:
        return sum(self._remaining.values())


class WatchWorkload(Workload):
    """Puts on the key space while watchers stream its events."""

    ops = ("put",)
    CREATE_TIMEOUT = 10.0
    DRAIN_TIMEOUT = 5.0

    def __init__(self, cfg: LoadConfig, share: WorkerShare) -> None:
        super().__init__(cfg, share)
        self.matcher: EventMatcher | None = None
        self._metrics: LoadMetrics | None = None
        self._watch_conns: list[Conn] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._created: list[asyncio.Event] = []
        self.stream_errors = 0

    def attach(self, recorder: Recorder, metrics: LoadMetrics | None) -> None:
        """Called by the runner once the clock (and so the recorder) exists."""
        self.matcher = EventMatcher(self.cfg.watchers, recorder, metrics)
        self._metrics = metrics

    async def setup(self, conns: list[Conn], clients: int) -> None:
        # One connection per endpoint carries that endpoint's watchers (a pool of one
        # socket per watcher over HTTP/1.1, streams of one channel over gRPC).
        endpoints = self.cfg.endpoints
        per_endpoint = -(-self.cfg.watchers // len(endpoints))
        self._watch_conns = [
            open_conn(self.cfg, endpoint, self.keys, per_endpoint) for endpoint in endpoints
        ]
        for w in range(self.cfg.watchers):
            created = asyncio.Event()
            self._created.append(created)
            conn = self._watch_conns[w % len(endpoints)]
            self._tasks.append(asyncio.create_task(self._watch(conn, created)))
        waiters = [asyncio.create_task(e.wait()) for e in self._created]
        _done, pending = await asyncio.wait(waiters, timeout=self.CREATE_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            raise EtcdError("timeout", f"{len(pending)} watchers not created in time")

    async def _watch(self, conn: Conn, created: asyncio.Event) -> None:
        clock = time.monotonic
        try:
            async with conn.watch(self.keys.first_key, self.keys.range_end) as stream:
                async for batch in stream:
                    now = clock()
                    if batch.created:
                        created.set()
                    matcher = self.matcher
                    if matcher is not None:
                        for revision in batch.revisions:
                            matcher.on_event(revision, now)
        except EtcdError as exc:
            self.stream_errors += 1
            log.warning(
                "watch stream failed endpoint=%s kind=%s message=%s",
                conn.endpoint,
                exc.kind,
                exc.message,
            )

    async def watched_put(self, conn: Conn, seq: int, client: int) -> None:
        index = self.key_index(seq)
        sent = time.monotonic()
        revision = await conn.put_revision(index)
        acked = time.monotonic()
        if self.matcher is not None:
            self.matcher.on_ack(revision, sent, acked)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "put", self.watched_put

    async def teardown(self) -> None:
        if self.matcher is not None:
            try:
                await asyncio.wait_for(self.matcher.all_seen.wait(), self.DRAIN_TIMEOUT)
            except TimeoutError:
                log.warning("watch events missing=%d after drain", self.matcher.missing)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self._watch_conns:
            await conn.close()

    def notes(self) -> list[str]:
        if self.stream_errors:
            return [f"{self.stream_errors} watch streams failed during the run"]
        return []


# Each workload name (loadgen.config.WORKLOADS, the CLI's subcommands) -> its class.
WORKLOAD_CLASSES: dict[str, type[Workload]] = {
    "put": PutWorkload,
    "range": RangeWorkload,
    "txn-put": TxnPutWorkload,
    "mixed": MixedWorkload,
    "lease-keepalive": LeaseKeepaliveWorkload,
    "watch": WatchWorkload,
}


def make_workload(cfg: LoadConfig, share: WorkerShare) -> Workload:
    cls = WORKLOAD_CLASSES.get(cfg.workload)
    if cls is None:
        raise ValueError(f"unknown workload {cfg.workload!r}")
    return cls(cfg, share)
