"""Every process the lab or a test starts dies with its parent, however the parent ends.

`spawn()` is the one way the harness starts a child (members, etcd, Prometheus,
Alertmanager, the load generator, `raftmon cluster` under test). On Linux the child asks
the kernel, between fork and exec, for SIGKILL when its parent dies (prctl
PR_SET_PDEATHSIG), so a lab or a pytest killed with SIGKILL or an unhandled SIGTERM
leaves nothing behind. NB: the kernel sends that signal when the *thread* that forked
exits, not the process; so every fork happens on one spawner thread that lives as long
as the process, never on a worker thread that may finish first.

The orderly path comes first wherever it can: `interrupt_on_signals()` turns SIGINT and
SIGTERM into KeyboardInterrupt, so the `finally` blocks stop children in order (members
flush, Prometheus closes its TSDB) before the process exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl: Callable[..., int] = libc.prctl
    return prctl


_PRCTL = _load_prctl()


def _die_with(parent: int) -> Callable[[], None]:
    """The child's last step before exec: SIGKILL me when `parent` goes away."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class _Spawner:
    """One daemon thread that performs every fork (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def call(self, job: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return job()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self._thread.start()
        done: Future[Any] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller, which re-raises it
                done.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(argv: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(argv, **popen)` for a child that dies with this process."""
    preexec = _die_with(os.getpid())

    def start() -> subprocess.Popen[Any]:
        return subprocess.Popen(list(argv), preexec_fn=preexec, **popen)

    proc: subprocess.Popen[Any] = _SPAWNER.call(start)
    return proc


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt here, so `finally` stops every child.

    SIGINT is set explicitly: a shell that starts us in the background leaves it ignored.
    Only the main thread can set handlers; elsewhere (a lab run inside a test) this is a
    no-op and the caller's own handling applies. The previous handlers come back on exit.
    """
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
