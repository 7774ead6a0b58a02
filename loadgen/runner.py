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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loadgen.config import DEFAULT_TOTAL, LoadConfig, WorkerShare
from loadgen.connect import open_conn
from loadgen.errors import SUCCESS, EtcdError, error_from_exception
from loadgen.recorder import Recorder, WorkerResult
from loadgen.workloads import WatchWorkload, make_workload

if TYPE_CHECKING:
    from loadgen.metrics import LoadMetrics, Snapshot

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
    conns = [
        open_conn(cfg, endpoint_for_conn(cfg, share, j), workload.keys, per_conn)
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
        delay = t0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

        inflight = metrics.inflight if metrics is not None else None
        clock = time.monotonic

        async def client_loop(client: int) -> None:
            conn = conns[client % len(conns)]
            while True:
                now = clock()
                k = tickets.take(now)
                if k is None:
                    return
                if tickets.open_loop:
                    start = tickets.intended(k)
                    if start > now:
                        await asyncio.sleep(start - now)
                        # NB: loop timers have ~1 ms granularity and may wake early; a
                        # request sent before its due time is timed from its actual send.
                        start = min(start, clock())
                else:
                    start = now
                op, fn = workload.next_op(k)
                recorder.record_send(clock())
                if inflight is not None:
                    inflight.inc()
                try:
                    await fn(conn, k, client)
                    outcome = SUCCESS
                except EtcdError as exc:
                    outcome = exc.kind
                    log.debug(
                        "request failed op=%s kind=%s http=%d code=%d message=%s",
                        op,
                        exc.kind,
                        exc.status,
                        exc.code,
                        exc.message,
                    )
                except Exception as exc:  # a bug or an odd answer must not end the run
                    outcome = error_from_exception(exc).kind
                    log.debug("request failed op=%s error=%r", op, exc)
                end = clock()
                if inflight is not None:
                    inflight.dec()
                recorder.record(op, outcome, end - start, end)
                if metrics is not None:
                    metrics.observe(op, outcome, end - start)

        def report() -> None:
            if sink is None:
                return
            last = recorder.last_closed
            sink(
                Progress(
                    worker=share.index,
                    ok=recorder.ok,
                    errors=recorder.errors,
                    last_second_ok=last.ok if last is not None else 0,
                    p99=recorder.last_p99,
                    planned=tickets.limit,
                    elapsed=clock() - t0,
                    metrics=metrics.snapshot() if (ship_metrics and metrics is not None) else None,
                )
            )

        async def ticker() -> None:
            n = 1
            while True:
                await asyncio.sleep(max(0.0, t0 + n * TICK - clock()))
                # The loop may wake a hair early: second n-1 is over by definition.
                recorder.roll(max(clock(), t0 + n * TICK))
                report()
                n += 1

        ticker_task = asyncio.create_task(ticker())
        # The generator's own CPU (every thread of this process: grpc's C core polls in
        # threads of its own) while it sends: what it takes from the cores it measures on.
        cpu_start = time.process_time()
        try:
            async with asyncio.TaskGroup() as group:
                for client in range(share.clients):
                    group.create_task(client_loop(client))
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
