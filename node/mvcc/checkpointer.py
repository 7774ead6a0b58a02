"""SQLite WAL checkpoints in a thread of their own, never inside a commit on the loop.

With SQLite's automatic checkpoint, the COMMIT that takes the WAL past 1,000 pages also
copies the WAL into the database file and fsyncs it, on the member's event loop: under
64 clients of puts such a commit took 20-59 ms about every 250 ms (the telemetry bench),
a stall every heartbeat, read and answer queued behind it. etcd's backend commits in a
goroutine of its own. So the main connection turns the automatic checkpoint off
(`schema.connect`) and this thread runs PASSIVE checkpoints on a short-lived connection
of its own, at most one every `interval` seconds while commits keep coming: a PASSIVE
checkpoint waits for no reader or writer (the loop keeps committing meanwhile) and
releases the GIL inside SQLite.

Durability does not change: commits never fsynced (synchronous=NORMAL; the Raft WAL is
the durable record), and a snapshot still runs its FULL checkpoint
(`KVStore.checkpoint_durable`) before Raft WAL segments go; SQLite lets one checkpoint run
at a time (the FULL one waits for this one, this one skips while the FULL one runs).
Replacing the database file (`KVStore.restore_from`) pauses the thread first.

The WAL file must also start over now and then. SQLite restarts it from the beginning
only at a write that finds every frame copied back, and under a steady load the loop
appends frames while the thread copies: the thread never finishes first, and the WAL grew
to 550 MB over a 61 MB database in a 60 s run (the db size metric then counted it, so
fragmentation and low-quota alerts went pending on a healthy cluster). So once the WAL
is past `reset_bytes`, the thread asks the writer for a turn (`reset_wanted`): right after
its next COMMIT the writer runs one PASSIVE checkpoint of its own, which copies only what
was appended since the thread's (milliseconds), and the write after it restarts the WAL
(journal_size_limit trims the file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 0.5
WAL_RESET_BYTES = 32 * 1024 * 1024  # past this, the writer finishes a checkpoint itself


class BackgroundCheckpointer:
    """Runs a PASSIVE checkpoint of `path` after commits, at most once per interval."""

    def __init__(
        self,
        path: str,
        interval: float = CHECKPOINT_INTERVAL_SECONDS,
        reset_bytes: int = WAL_RESET_BYTES,
    ) -> None:
        self._path = path
        self._reset_bytes = reset_bytes
        self.reset_wanted = False  # set by the thread, cleared by the writer
        self._files = threading.Lock()  # held while a checkpoint has the files open
        self._interval = interval
        self._due = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_started = 0.0
        self.checkpoints = 0  # completed, for tests and diagnostics
        self.writer_resets = 0  # checkpoints finished by the writer

    def committed(self) -> None:
        """A commit happened (called on the loop): wake the thread if a turn is due."""
        if self._stopping or self._due.is_set():
            return
        if time.monotonic() - self._last_started < self._interval:
            return
        self.wake()

    def wake(self) -> None:
        """Run a checkpoint now, in the thread.

        The store calls it at open when a killed process left a WAL behind: otherwise the
        first close copies it back, and for a follower that receives a snapshot that is
        the install's close of the old database (~25 ms at 10k keys, while it waits),
        though the file it copies into is replaced right after.
        """
        if self._stopping:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()
        self._due.set()

    def finish_on_writer(self, conn: sqlite3.Connection) -> None:
        """On the loop, right after a COMMIT: if the WAL is long, copy back the little the
        thread left, so the next write restarts the WAL (`reset_wanted`)."""
        if not self.reset_wanted:
            return
        # Never wait on the loop: busy means the thread's checkpoint (or a paused file
        # swap) is on, and the next commit asks again.
        if not self._files.acquire(blocking=False):
            return
        try:
            self.reset_wanted = False
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.writer_resets += 1
        except sqlite3.Error as err:  # the thread asks again after its next turn
            log.debug("writer checkpoint skipped", extra={"fields": {"error": str(err)}})
        finally:
            self._files.release()

    def close(self) -> None:
        """Stop the thread, waiting for a checkpoint in progress (before the store closes)."""
        self._stopping = True
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No checkpoint connection is open inside (the files may be replaced)."""
        with self._files:
            yield

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._stopping:
                return
            self._due.clear()  # before the checkpoint: a wake (or close) meanwhile is kept
            self._last_started = time.monotonic()
            self._checkpoint()

    def _checkpoint(self) -> None:
        with self._files:
            try:
                conn = sqlite3.connect(self._path, isolation_level=None)
                try:
                    _busy, wal_frames, _copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                    self.checkpoints += 1
                    if int(wal_frames) * int(page_size) > self._reset_bytes:
                        self.reset_wanted = True
                finally:
                    conn.close()
            except sqlite3.Error as err:  # busy or closing: the next commit asks again
                log.debug("background checkpoint skipped", extra={"fields": {"error": str(err)}})


def checkpoint_ahead(path: str) -> None:
    """Copy SQLite's WAL into the database file and fsync it, blocking no writer.

    A snapshot's FULL checkpoint (`KVStore.checkpoint_durable`) holds the store's writers
    for as long as it copies and fsyncs; run first, this leaves it only the frames
    committed since and the pages written since: the bulk of the copying and of the
    flushing happens here, while the loop goes on applying and committing. A PASSIVE
    checkpoint fsyncs the database only when it copied every frame, which under load it
    rarely does, so the fsync here is explicit (of the file, through any descriptor).
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
