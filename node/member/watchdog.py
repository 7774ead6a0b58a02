"""A diagnostic: log every stall of the member's event loop, with what held it.

etcd's heartbeat detector (`etcd_server_heartbeat_send_failures_total`) counts a stall of
the leader's loop only once it passed 2 heartbeat intervals, and says nothing of its
cause. With RAFTMON_STALL_WATCHDOG_MS=<ms> in the member's environment (off by default:
it costs a timer on the loop every few milliseconds and a thread), this module logs each
stall longer than that many milliseconds once the loop turns again, with

* the stacks of the loop thread sampled while it was held (`sys._current_frames()`,
  every ~5 ms; the most frequent first), so the code that held it is named;
* where the loop thread's wall time went (Linux's /proc/self/task/<tid>/schedstat): on
  a CPU (busy in this process), waiting on the run queue (descheduled: the box was
  busy), or neither (blocked: disk I/O, a lock, a sleep), with the thread's scheduler
  states sampled meanwhile (R running or runnable, S sleeping, D waiting for the disk);
* the garbage collections that ran inside it (gc callbacks time each), which a sampler
  cannot see: a collection holds the GIL throughout.

The watchdog observes only: it changes no timing the heartbeat detector sees.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "RAFTMON_STALL_WATCHDOG_MS"
STAMP_SECONDS = 0.005  # how often the loop stamps that it turned
SAMPLE_SECONDS = 0.005  # how often the thread looks (and samples a held loop's stack)
STACK_DEPTH = 12  # innermost frames kept per sample
MAX_STACKS = 3  # distinct stacks logged per stall


@dataclass(slots=True)
class Stall:
    """One stall of the loop, as logged."""

    started: float  # monotonic time of the last turn before it
    seconds: float  # wall time the loop did not turn
    loop_cpu_seconds: float  # the loop thread's CPU time meanwhile
    runqueue_seconds: float  # the loop thread's time runnable but not running
    process_cpu_seconds: float  # every thread of the process meanwhile
    gc_seconds: float  # garbage collections that ran inside it
    # (generation, wall seconds, CPU seconds of the collecting thread, objects collected)
    gc_collections: list[tuple[int, float, float, int]] = field(default_factory=list)
    stacks: list[tuple[int, str]] = field(default_factory=list)  # (samples, stack)
    states: dict[str, int] = field(default_factory=dict)  # scheduler state: samples

    @property
    def blocked_seconds(self) -> float:
        """Neither on a CPU nor waiting for one: blocked in a system call or a lock."""
        return max(0.0, self.seconds - self.loop_cpu_seconds - self.runqueue_seconds)


def threshold_from_env(environ: dict[str, str] | None = None) -> float:
    """The stall threshold in seconds from RAFTMON_STALL_WATCHDOG_MS (0: off)."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not raw:
        return 0.0
    try:
        ms = float(raw)
    except ValueError:
        log.warning("ignored %s=%r: not a number of milliseconds", ENV_VAR, raw)
        return 0.0
    return max(0.0, ms / 1000.0)


def _format_stack(frame: Any) -> str:
    """The innermost STACK_DEPTH frames, outermost first, one `file:line function` each."""
    entries = traceback.extract_stack(frame)[-STACK_DEPTH:]
    return " < ".join(
        f"{os.path.basename(e.filename)}:{e.lineno} {e.name}" for e in reversed(entries)
    )


class LoopWatchdog:
    """Stamps each turn of `loop` and watches the stamps from a thread of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        self._loop = loop
        self._threshold = threshold
        self._loop_thread = threading.get_ident()  # created on the loop's thread
        task = f"/proc/self/task/{threading.get_native_id()}"
        self._schedstat = f"{task}/schedstat"
        self._stat = f"{task}/stat"
        self._last_turn = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        # (monotonic end, generation, wall and CPU seconds, collected) of recent collections
        self._collections: collections.deque[tuple[float, int, float, float, int]] = (
            collections.deque(maxlen=256)
        )
        self._gc_started = (0.0, 0.0)
        self.stalls: collections.deque[Stall] = collections.deque(maxlen=1000)  # the latest

    # ---- life --------------------------------------------------------------------------
    def start(self) -> None:
        """Start stamping and watching (on the loop's thread)."""
        self._last_turn = time.monotonic()
        self._timer = self._loop.call_later(STAMP_SECONDS, self._stamp)
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()
        log.info(
            "loop watchdog on",
            extra={"fields": {"threshold": f"{self._threshold * 1000:.0f}ms"}},
        )

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    # ---- on the loop ---------------------------------------------------------------------
    def _stamp(self) -> None:
        self._last_turn = time.monotonic()
        if not self._stop.is_set():
            self._timer = self._loop.call_later(STAMP_SECONDS, self._stamp)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        """gc callback (whichever thread collects): time each collection."""
        now, cpu = time.monotonic(), time.thread_time()
        if phase == "start":
            self._gc_started = (now, cpu)
        elif self._gc_started[0]:
            wall, on_cpu = now - self._gc_started[0], cpu - self._gc_started[1]
            generation, collected = info.get("generation", -1), info.get("collected", 0)
            self._collections.append((now, generation, wall, on_cpu, collected))

    # ---- the watching thread -------------------------------------------------------------
    def _cpu(self) -> tuple[float, float, float]:
        """The loop thread's CPU and run-queue seconds so far, and the process's CPU."""
        try:
            with open(self._schedstat) as f:
                on_cpu, waiting = f.read().split()[:2]
            loop_cpu, runqueue = int(on_cpu) / 1e9, int(waiting) / 1e9
        except (OSError, ValueError):  # not Linux, or no schedstats
            loop_cpu, runqueue = 0.0, 0.0
        return loop_cpu, runqueue, time.process_time()

    def _state(self) -> str:
        """The loop thread's scheduler state letter (R, S, D...), '?' if unknown."""
        try:
            with open(self._stat) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return "?"

    def _watch(self) -> None:
        held_since = 0.0  # the stamp of the stall being watched (0: none)
        cpu_at_start = cpu_before = self._cpu()
        samples: collections.Counter[str] = collections.Counter()
        states: collections.Counter[str] = collections.Counter()
        while not self._stop.wait(SAMPLE_SECONDS):
            last = self._last_turn
            now = time.monotonic()
            if held_since and last != held_since:  # it turned again: the stall ended
                self._report(held_since, last, cpu_at_start, samples, states)
                held_since, samples, states = 0.0, collections.Counter(), collections.Counter()
            if now - last > STAMP_SECONDS + self._threshold / 2:
                if not held_since:  # CPU clocks from the look before (~ the last turn)
                    held_since, cpu_at_start = last, cpu_before
                states[self._state()] += 1
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    samples[_format_stack(frame)] += 1
                del frame
            else:
                cpu_before = self._cpu()

    def _report(
        self,
        started: float,
        turned: float,
        cpu_at_start: tuple[float, float, float],
        samples: collections.Counter[str],
        states: collections.Counter[str],
    ) -> None:
        # The stamp that ended it was set up to STAMP_SECONDS after the loop was free.
        seconds = turned - started - STAMP_SECONDS
        if seconds < self._threshold:
            return
        loop_cpu, runqueue, process_cpu = self._cpu()
        collections_in = [
            (gen, wall, on_cpu, collected)
            for end, gen, wall, on_cpu, collected in list(self._collections)
            if started < end <= turned
        ]
        stall = Stall(
            started=started,
            seconds=seconds,
            loop_cpu_seconds=loop_cpu - cpu_at_start[0],
            runqueue_seconds=runqueue - cpu_at_start[1],
            process_cpu_seconds=process_cpu - cpu_at_start[2],
            gc_seconds=sum(wall for _, wall, _, _ in collections_in),
            gc_collections=collections_in,
            stacks=[(n, stack) for stack, n in samples.most_common(MAX_STACKS)],
            states=dict(states),
        )
        self.stalls.append(stall)
        log.warning(
            "event loop stalled",
            extra={
                "fields": {
                    "stall": f"{stall.seconds * 1000:.0f}ms",
                    "loop-thread-cpu": f"{stall.loop_cpu_seconds * 1000:.0f}ms",
                    "loop-thread-runqueue": f"{stall.runqueue_seconds * 1000:.0f}ms",
                    "loop-thread-blocked": f"{stall.blocked_seconds * 1000:.0f}ms",
                    "loop-thread-states": "".join(f"{k}{n}" for k, n in sorted(states.items())),
                    "process-cpu": f"{stall.process_cpu_seconds * 1000:.0f}ms",
                    "gc": f"{stall.gc_seconds * 1000:.0f}ms",
                    "gc-collections": [
                        f"gen{gen} {wall * 1000:.0f}ms cpu={on_cpu * 1000:.0f}ms collected={n}"
                        for gen, wall, on_cpu, n in collections_in
                    ],
                    "samples": sum(samples.values()),
                    "stacks": [f"{n}x {stack}" for n, stack in stall.stacks],
                }
            },
        )


def start_from_env(environ: dict[str, str] | None = None) -> LoopWatchdog | None:
    """On the running loop: a started watchdog when RAFTMON_STALL_WATCHDOG_MS asks, else None."""
    threshold = threshold_from_env(environ)
    if threshold <= 0:
        return None
    watchdog = LoopWatchdog(asyncio.get_running_loop(), threshold)
    watchdog.start()
    return watchdog
