"""The workloads: what one request of each kind sends, and what a run sets up and tears down.

A workload hands the runner one operation per ticket (`next_op(seq)` -> name, coroutine
function). The runner owns timing, recording and error counting; a workload only
sends and raises `EtcdError` when the answer is not a success.

- put: `/v3/kv/put` of one key of the key space (random, or sequential with
  `--sequential-keys`), the value of `--val-size` bytes.
- range: `/v3/kv/range` of one key of the key space, or of `range KEY [END]`;
  serializable with `--consistency s`.
- txn-put: `/v3/kv/txn` whose success branch puts `--txn-ops` distinct keys.
- mixed: range with probability `--read-ratio`, otherwise put.
- watch: puts as above while `--watchers` streams watch the key space; each event's
  latency is from its put's acknowledgement to the event reaching the watcher.
- lease-keepalive: each client grants a lease (`--ttl`) at set-up and then refreshes
  it with `/v3/lease/keepalive`; leases are revoked at tear-down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loadgen.client import EtcdClient, parse_keepalive
from loadgen.errors import EtcdError
from loadgen.keyspace import KeySpace, fixed_range_body

if TYPE_CHECKING:
    from loadgen.config import LoadConfig, WorkerShare
    from loadgen.metrics import LoadMetrics
    from loadgen.recorder import Recorder

log = logging.getLogger(__name__)

OpFn = Callable[[EtcdClient, int, int], Awaitable[None]]  # (conn, seq, client index)


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

    async def setup(self, conns: list[EtcdClient], clients: int) -> None:
        """Prepare before the clock starts (not measured)."""

    async def teardown(self) -> None:
        """Clean up after the last request (not measured)."""

    def notes(self) -> list[str]:
        return []

    # Shared operations ---------------------------------------------------------------
    async def put(self, conn: EtcdClient, seq: int, client: int) -> None:
        await conn.call_raw("/v3/kv/put", self.keys.put_body(self.key_index(seq)))

    async def range(self, conn: EtcdClient, seq: int, client: int) -> None:
        body = self.keys.range_body(self.key_index(seq), serializable=self.serializable)
        await conn.call_raw("/v3/kv/range", body)


class PutWorkload(Workload):
    ops = ("put",)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "put", self.put


class RangeWorkload(Workload):
    ops = ("range",)

    def __init__(self, cfg: LoadConfig, share: WorkerShare) -> None:
        super().__init__(cfg, share)
        self._fixed: bytes | None = None
        if cfg.range_key is not None:
            end = cfg.range_end.encode() if cfg.range_end is not None else None
            self._fixed = fixed_range_body(
                cfg.range_key.encode(), end, serializable=self.serializable
            )

    async def fixed_range(self, conn: EtcdClient, seq: int, client: int) -> None:
        assert self._fixed is not None
        await conn.call_raw("/v3/kv/range", self._fixed)

    def next_op(self, seq: int) -> tuple[str, OpFn]:
        return "range", self.fixed_range if self._fixed is not None else self.range


class TxnPutWorkload(Workload):
    ops = ("txn-put",)

    async def txn_put(self, conn: EtcdClient, seq: int, client: int) -> None:
        first = self.key_index(seq)
        await conn.call_raw("/v3/kv/txn", self.keys.txn_put_body(first, self.cfg.txn_ops))

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
        self._bodies: list[bytes] = []
        self._leases: list[tuple[EtcdClient, int]] = []

    async def setup(self, conns: list[EtcdClient], clients: int) -> None:
        for client in range(clients):
            conn = conns[client % len(conns)]
            lease_id, _ttl = await conn.lease_grant(self.cfg.lease_ttl)
            self._leases.append((conn, lease_id))
            self._bodies.append(b'{"ID":' + str(lease_id).encode() + b"}")

    async def keepalive(self, conn: EtcdClient, seq: int, client: int) -> None:
        payload = await conn.call_raw("/v3/lease/keepalive", self._bodies[client])
        parse_keepalive(json.loads(payload))

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
        self._watch_client: EtcdClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._created: list[asyncio.Event] = []
        self.stream_errors = 0

    def attach(self, recorder: Recorder, metrics: LoadMetrics | None) -> None:
        """Called by the runner once the clock (and so the recorder) exists."""
        self.matcher = EventMatcher(self.cfg.watchers, recorder, metrics)
        self._metrics = metrics

    async def setup(self, conns: list[EtcdClient], clients: int) -> None:
        self._watch_client = EtcdClient(
            list(self.cfg.endpoints),
            timeout=self.cfg.timeout,
            limit=self.cfg.watchers,
            ssl=self.cfg.ssl_context(),
        )
        for w in range(self.cfg.watchers):
            created = asyncio.Event()
            self._created.append(created)
            endpoint = self._watch_client.endpoints[w % len(self._watch_client.endpoints)]
            self._tasks.append(asyncio.create_task(self._watch(endpoint, created)))
        waiters = [asyncio.create_task(e.wait()) for e in self._created]
        _done, pending = await asyncio.wait(waiters, timeout=self.CREATE_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            raise EtcdError("timeout", f"{len(pending)} watchers not created in time")

    async def _watch(self, endpoint: str, created: asyncio.Event) -> None:
        assert self._watch_client is not None
        clock = time.monotonic
        try:
            async with self._watch_client.watch(
                self.keys.first_key, self.keys.range_end, endpoint=endpoint
            ) as stream:
                async for line in stream.raw_lines():
                    now = clock()
                    result: dict[str, Any] = line.get("result") or {}
                    if line.get("error"):
                        self.stream_errors += 1
                        log.warning("watch stream error endpoint=%s error=%s", endpoint, line)
                        return
                    if result.get("created"):
                        created.set()
                    matcher = self.matcher
                    if matcher is not None:
                        for ev in result.get("events", ()):
                            matcher.on_event(int(ev["kv"]["mod_revision"]), now)
        except EtcdError as exc:
            self.stream_errors += 1
            log.warning("watch stream failed endpoint=%s kind=%s", endpoint, exc.kind)

    async def watched_put(self, conn: EtcdClient, seq: int, client: int) -> None:
        body = self.keys.put_body(self.key_index(seq))
        sent = time.monotonic()
        payload = await conn.call_raw("/v3/kv/put", body)
        acked = time.monotonic()
        revision = int(json.loads(payload)["header"]["revision"])
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
        if self._watch_client is not None:
            await self._watch_client.close()

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
