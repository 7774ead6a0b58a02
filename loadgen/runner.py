"""One worker's run: connections, the ticket schedule, the client loops, and the ticker.

Closed loop (no `--rate`): each client sends its next request when the previous one
is answered; latency is measured from the actual send.

Open loop (`--rate R`): ticket k of the whole run is *intended* to leave at
`t0 + k / R` whatever happened before. Workers take every `count`-th ticket (offset
by their index), so together they follow one schedule. A client takes the next
ticket, waits for its intended time if that is still ahead, sends, and records
latency from the **intended** time. When the cluster stalls, tickets pile up behind
busy clients and their waiting shows as latency instead of vanishing: no coordinated
omission. Tickets still unsent when the hard stop (schedule end + request timeout +
1 s) passes are counted as `unsent`, never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loadgen.blocking_http import run_now
from loadgen.config import DEFAULT_TOTAL, LoadConfig, WorkerShare, client_threads
from loadgen.connect import open_conn
from loadgen.errors import SUCCESS, EtcdError, error_from_exception
from loadgen.recorder import Recorder, WorkerResult
from loadgen.workloads import WatchWorkload, make_workload

if TYPE_CHECKING:
    from loadgen.conn import Conn
    from loadgen.metrics import LoadMetrics, Snapshot
    from loadgen.workloads import Workload

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between series roll-ups / progress updates


@dataclass(slots=True)
class Progress:
    """What a worker reports each tick (and what the progress bar shows, summed)."""

    worker: int
    ok: int
    errors: int
    last_second_ok: int
    p99: float  # seconds, last closed second
    planned: int | None
    elapsed: float
    metrics: Snapshot | None = None


ProgressSink = Callable[[Progress], None]
StartGate = Callable[[], Awaitable[float]]  # returns the common start, wall-clock epoch


class Tickets:
    """The run's schedule for one worker: which ticket is next, and when it is due."""

    def __init__(self, cfg: LoadConfig, share: WorkerShare, t0: float) -> None:
        self.t0 = t0
        self.rate = cfg.rate
        self.stride = share.count
        self.offset = share.index
        self.next = 0
        total = cfg.total
        if total is None and cfg.duration is None:
            total = DEFAULT_TOTAL
        self.limit = share.tickets(total) if total is not None else None
        self.deadline = t0 + cfg.duration if cfg.duration is not None else None
        if self.rate > 0:
            if self.limit is None:
                assert cfg.duration is not None
                self.limit = max(
                    0, math.ceil((cfg.duration * self.rate - self.offset) / self.stride)
                )
            schedule_end = self.intended(self.limit)
            if self.deadline is not None:
                schedule_end = min(schedule_end, self.deadline)
            self.hard_stop: float | None = schedule_end + cfg.timeout + 1.0
        else:
            self.hard_stop = None
        self.stopped = False

    @property
    def open_loop(self) -> bool:
        return self.rate > 0

    def intended(self, k: int) -> float:
        return self.t0 + (k * self.stride + self.offset) / self.rate

    def take(self, now: float) -> int | None:
        """The next ticket, or None when this worker's share of the run is done."""
        if self.stopped:
            return None
        k = self.next
        if self.limit is not None and k >= self.limit:
            return None
        if self.open_loop:
            if self.hard_stop is not None and now > self.hard_stop:
                self.stopped = True
                return None
        elif self.deadline is not None and now >= self.deadline:
            return None
        self.next = k + 1
        return k

    @property
    def unsent(self) -> int:
        if self.limit is None:
            return 0
        return max(0, self.limit - self.next)


def endpoint_for_conn(cfg: LoadConfig, share: WorkerShare, j: int) -> str:
    """Connections of all workers, numbered globally, go round-robin over the endpoints."""
    return cfg.endpoints[(share.index + j * share.count) % len(cfg.endpoints)]


class Clients:
    """A worker's client loops: take the next ticket, send its request, record the answer.

    Two ways to wait for answers, one bookkeeping: as tasks of the worker's event loop
    (many clients share each loop turn), or on threads of their own with blocking sockets
    (`loadgen.config.client_threads`: few clients, each request a send and a recv). With
    threads, `lock` guards what they share with each other and with the ticker: the
    tickets, the recorder and the workload's choice of operation.
    """

    def __init__(
        self,
        workload: Workload,
        conns: list[Conn],
        tickets: Tickets,
        recorder: Recorder,
        metrics: LoadMetrics | None,
    ) -> None:
        self.workload = workload
        self.conns = conns
        self.tickets = tickets
        self.recorder = recorder
        self.metrics = metrics
        self.inflight = metrics.inflight if metrics is not None else None
        self.lock = threading.Lock()

    def due(self, k: int, now: float) -> float:
        """When ticket `k` is due: its intended time in open loop, else now."""
        return self.tickets.intended(k) if self.tickets.open_loop else now

    def sent(self) -> None:
        self.recorder.record_send(time.monotonic())
        if self.inflight is not None:
            self.inflight.inc()

    def done(self, op: str, outcome: str, start: float) -> None:
        end = time.monotonic()
        if self.inflight is not None:
            self.inflight.dec()
        self.recorder.record(op, outcome, end - start, end)
        if self.metrics is not None:
            self.metrics.observe(op, outcome, end - start)

    async def run(self, count: int, *, threads: bool) -> None:
        """Run `count` clients to the end of the tickets."""
        if not threads:
            async with asyncio.TaskGroup() as group:
                for client in range(count):
                    group.create_task(self.task(client))
            return
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(count, thread_name_prefix="raftmon-load-client") as pool:
            try:
                await asyncio.gather(
                    *(loop.run_in_executor(pool, self.thread, c) for c in range(count))
                )
            finally:
                # A cancelled or failed run: each thread ends after its request at most.
                self.tickets.stopped = True

    async def task(self, client: int) -> None:
        """One client as a task of the event loop."""
        conn = self.conns[client % len(self.conns)]
        clock = time.monotonic
        while True:
            now = clock()
            k = self.tickets.take(now)
            if k is None:
                return
            start = self.due(k, now)
            if start > now:
                await asyncio.sleep(start - now)
                # NB: loop timers have ~1 ms granularity and may wake early; a request
                # sent before its due time is timed from its actual send.
                start = min(start, clock())
            op, fn = self.workload.next_op(k)
            self.sent()
            try:
                await fn(conn, k, client)
                outcome = SUCCESS
            except Exception as exc:  # a bug or an odd answer must not end the run
                outcome = failure_kind(op, exc)
            self.done(op, outcome, start)

    def thread(self, client: int) -> None:
        """One client on a thread of its own: its requests block it (`run_now`)."""
        conn = self.conns[client % len(self.conns)]
        clock = time.monotonic
        lock = self.lock
        while True:
            with lock:
                now = clock()
                k = self.tickets.take(now)
            if k is None:
                return
            start = self.due(k, now)
            if start > now:
                time.sleep(start - now)
                start = min(start, clock())
            with lock:
                op, fn = self.workload.next_op(k)
                self.sent()
            try:
                run_now(fn(conn, k, client))
                outcome = SUCCESS
            except Exception as exc:  # a bug or an odd answer must not end the run
                outcome = failure_kind(op, exc)
            with lock:
                self.done(op, outcome, start)


def failure_kind(op: str, exc: Exception) -> str:
    """The report's kind of a failed request (logged at DEBUG, one line each)."""
    if isinstance(exc, EtcdError):
        log.debug(
            "request failed op=%s kind=%s http=%d code=%d message=%s",
            op,
            exc.kind,
            exc.status,
            exc.code,
            exc.message,
        )
        return exc.kind
    log.debug("request failed op=%s error=%r", op, exc)
    return error_from_exception(exc).kind


async def run_worker(
    cfg: LoadConfig,
    share: WorkerShare,
    start_gate: StartGate,
    sink: ProgressSink | None = None,
    metrics: LoadMetrics | None = None,
    ship_metrics: bool = False,
) -> WorkerResult:
    """Run this worker's share of `cfg`; never raises for a request that fails."""
    per_conn = max(1, math.ceil(share.clients / share.conns))
    workload = make_workload(cfg, share)
    threads = client_threads(cfg, share)
    conns = [
        open_conn(cfg, endpoint_for_conn(cfg, share, j), workload.keys, per_conn, blocking=threads)
        for j in range(share.conns)
    ]
    if metrics is not None:
        metrics.target_rate.set(cfg.rate / share.count if cfg.rate else 0.0)
        metrics.bind(workload.ops)
    try:
        await workload.setup(conns, share.clients)
        start_at = await start_gate()
        # Convert the common wall-clock start into this process's monotonic clock.
        t0 = time.monotonic() + (start_at - time.time())
        recorder = Recorder(t0)
        for op in workload.ops:
            recorder.ensure_op(op)
        if isinstance(workload, WatchWorkload):
            workload.attach(recorder, metrics)
        tickets = Tickets(cfg, share, t0)
        clients = Clients(workload, conns, tickets, recorder, metrics)
        delay = t0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

        def report() -> None:
            if sink is None:
                return
            with clients.lock:
                last = recorder.last_closed
                progress = Progress(
                    worker=share.index,
                    ok=recorder.ok,
                    errors=recorder.errors,
                    last_second_ok=last.ok if last is not None else 0,
                    p99=recorder.last_p99,
                    planned=tickets.limit,
                    elapsed=time.monotonic() - t0,
                    metrics=metrics.snapshot() if (ship_metrics and metrics is not None) else None,
                )
            sink(progress)

        async def ticker() -> None:
            n = 1
            while True:
                await asyncio.sleep(max(0.0, t0 + n * TICK - time.monotonic()))
                # The loop may wake a hair early: second n-1 is over by definition.
                with clients.lock:
                    recorder.roll(max(time.monotonic(), t0 + n * TICK))
                report()
                n += 1

        ticker_task = asyncio.create_task(ticker())
        # The generator's own CPU (every thread of this process: grpc's C core polls in
        # threads of its own, client threads send) while it sends: what it takes from the
        # cores it measures on.
        cpu_start = time.process_time()
        try:
            await clients.run(share.clients, threads=threads)
        finally:
            ticker_task.cancel()
            await asyncio.gather(ticker_task, return_exceptions=True)
        cpu_seconds = time.process_time() - cpu_start
        recorder.flush()
        elapsed = max(recorder.last_end - t0, 1e-9)
        await workload.teardown()
        report()
        result = WorkerResult(
            index=share.index,
            ops=recorder.op_results(),
            series=recorder.series,
            elapsed=elapsed,
            sent=tickets.next,
            unsent=tickets.unsent,
            notes=workload.notes(),
            cpu_seconds=cpu_seconds,
        )
        if isinstance(workload, WatchWorkload) and workload.matcher is not None:
            result.watch_events, result.watch_events_from_send = recorder.event_results()
            result.watch_early_events = workload.matcher.early
            result.watch_missing_events = workload.matcher.missing
        return result
    finally:
        for conn in conns:
            await conn.close()


async def immediate_start() -> float:
    """The start gate of a single in-process worker: start now."""
    return time.time()
