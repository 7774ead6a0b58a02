"""Running a load: in this process (one worker) or in N spawned processes (`--workers N`).

Python spends most of a request in the interpreter, so one process saturates one core
long before a cluster saturates; N processes each run their share of the clients and
of the rate schedule. They start together: each does its set-up, says "ready", and
waits for the parent's go with a common wall-clock start. Results come back as
`WorkerResult`s (HDR histograms encoded) and are merged by `loadgen.report`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import queue as queue_mod
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

from loadgen.config import LoadConfig, WorkerShare, shares
from loadgen.metrics import LoadMetrics, MergedCollector
from loadgen.runner import Progress, ProgressSink, immediate_start, run_worker

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from loadgen.recorder import WorkerResult

log = logging.getLogger(__name__)

T = TypeVar("T")
READY_TIMEOUT = 120.0  # spawn + import + set-up (watchers, leases) of every worker
START_DELAY = 0.2  # seconds between "go" and the common start, so every worker sees it ahead
POLL = 0.2


LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s"


def configure_logging(level: int) -> None:
    """stderr logging at `level`, in the parent and in each spawned worker alike.

    NB: basicConfig does nothing when the root logger already has a handler (an
    embedding program, pytest); the generator's own loggers follow `level` anyway.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("loadgen").setLevel(level)


class WorkerFailed(RuntimeError):
    """A worker process crashed or could not start (its traceback is in the message)."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def run_in_process(
    cfg: LoadConfig, sink: ProgressSink | None, metrics: LoadMetrics | None
) -> list[WorkerResult]:
    share = WorkerShare(index=0, count=1, clients=cfg.clients, conns=cfg.conns)
    return [run_async(run_worker(cfg, share, immediate_start, sink, metrics))]


def _worker_entry(
    cfg: LoadConfig,
    share: WorkerShare,
    out: Any,
    go: Any,
    start_at: Any,
    ship_metrics: bool,
    log_level: int,
) -> None:
    """Body of a spawned worker: run the share, send ticks and the result to the parent."""
    configure_logging(log_level)

    async def gate() -> float:
        out.put(("ready", share.index, None))
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, go.wait, READY_TIMEOUT):
            raise WorkerFailed("the parent never gave the start signal")
        return float(start_at.value)

    def sink(tick: Progress) -> None:
        out.put(("progress", share.index, tick))

    try:
        metrics = LoadMetrics() if ship_metrics else None
        result = run_async(run_worker(cfg, share, gate, sink, metrics, ship_metrics=ship_metrics))
        out.put(("result", share.index, result))
    except BaseException:
        out.put(("error", share.index, traceback.format_exc()))


def run_processes(
    cfg: LoadConfig,
    sink: ProgressSink | None,
    merged: MergedCollector | None,
    log_level: int = logging.WARNING,
) -> list[WorkerResult]:
    """Run `cfg` in spawned worker processes and return their results (index order)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    worker_shares = shares(cfg)
    n = len(worker_shares)
    procs = [
        ctx.Process(
            target=_worker_entry,
            args=(cfg, share, out, go, start_at, merged is not None, log_level),
            name=f"raftmon-load-{share.index}",
            daemon=True,
        )
        for share in worker_shares
    ]
    for proc in procs:
        proc.start()
    ready: set[int] = set()
    results: dict[int, WorkerResult] = {}
    failures: dict[int, str] = {}
    spawned = time.monotonic()
    try:
        while len(results) + len(failures) < n:
            try:
                kind, index, payload = out.get(timeout=POLL)
            except queue_mod.Empty:
                for i, proc in enumerate(procs):
                    if proc.exitcode is not None and i not in results and i not in failures:
                        # It may have put its result just before exiting: drain once more.
                        continue_draining = not out.empty()
                        if not continue_draining:
                            failures[i] = f"worker {i} exited with code {proc.exitcode}"
                if len(ready) < n and time.monotonic() - spawned > READY_TIMEOUT:
                    raise WorkerFailed("workers did not become ready in time") from None
                if failures:
                    break
                continue
            if kind == "ready":
                ready.add(index)
                if len(ready) == n:
                    start_at.value = time.time() + START_DELAY
                    go.set()
            elif kind == "progress":
                if merged is not None and payload.metrics is not None:
                    merged.update(index, payload.metrics)
                if sink is not None:
                    sink(payload)
            elif kind == "result":
                results[index] = payload
            elif kind == "error":
                failures[index] = payload
                break
        if failures:
            raise WorkerFailed("; ".join(f"worker {i}: {t}" for i, t in sorted(failures.items())))
    finally:
        go.set()  # never leave a worker waiting on the gate
        for proc in procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)
        out.close()
    return [results[i] for i in sorted(results)]
