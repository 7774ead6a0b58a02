"""The member's write-ahead log: group-commit appends, one fdatasync per save.

Durability contract: `save()` returns only after everything it was given is
on disk (when `must_sync`), written with ONE `os.write` of the whole batch and
ONE `os.fdatasync`; that fdatasync is timed with `time.perf_counter` and
reported through `WalObserver.on_fsync` (etcd_disk_wal_fsync_duration_seconds).
The driver groups every proposal of one Ready into one save, so the fsync cost
is shared by all of them (group commit).

Threading: the driver calls `save()` from a worker thread
(`asyncio.to_thread`) so the event loop keeps running during the fsync. All
mutating methods take one lock, so there is one writer at a time; calling
them concurrently is safe but serialised. `fsync_delay_seconds` may be set
from any thread at any time (a float store is atomic) and applies to the next
fsync. Counters are plain ints, readable from any thread.

Failure: any OSError during a save (ENOSPC, EIO, a failed fdatasync) raises
`WALWriteError` and makes the WAL refuse further writes (fail-stop, as etcd).
Whatever part of the batch reached the file was not acknowledged; the next
`WAL.open` sees it as a torn tail and truncates it.

On-disk format: see record.py (framing) and segment.py (files); recovery rules
in recovery.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING

from node.fsutil import fsync_dir, preallocate
from node.raft.messages import Entry, HardState, SnapshotMetadata
from node.wal.errors import (
    WALClosedError,
    WALError,
    WALExistsError,
    WALLockedError,
    WALWriteError,
)
from node.wal.observer import NULL_WAL_OBSERVER, WalObserver
from node.wal.record import (
    FrameStatus,
    RecordType,
    WalSnapshot,
    encode_hard_state,
    encode_snapshot,
    frame,
    frame_entry,
    read_frame,
)
from node.wal.recovery import Recovered, SegmentInfo, scan
from node.wal.segment import (
    SegmentName,
    create_segment,
    head_records,
    list_segments,
    list_tmp_files,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024  # etcd's SegmentSizeBytes
# A snapshot marker starts a new segment once the active one holds this much (see
# `save_snapshot`): below it, reading the segment again at a restart costs ~3 ms.
SNAPSHOT_CUT_BYTES = 1024 * 1024


def _lock_dir(directory: str) -> int:
    """Open and exclusively flock the WAL directory: one writer process per data dir."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WALLockedError(f"wal directory {directory} is locked by another writer") from None
    return fd


def _as_marker(snap: SnapshotMetadata | WalSnapshot | None) -> WalSnapshot | None:
    if snap is None:
        return None
    return WalSnapshot(index=snap.index, term=snap.term)


class WAL:
    """An open write-ahead log. Build it with `WAL.create` or `WAL.open`, never directly."""

    def __init__(
        self,
        directory: str,
        dir_fd: int,
        *,
        metadata: bytes,
        segments: list[SegmentInfo],
        fd: int,
        offset: int,
        fresh: bool,
        hard_state: HardState | None,
        snapshot: WalSnapshot | None,
        last_index: int,
        segment_size: int,
        observer: WalObserver,
        tail: Sequence[Entry] = (),
    ) -> None:
        self._dir = directory
        self._dir_fd = dir_fd
        self._metadata = metadata
        self._segments = segments  # oldest first; the last one is the active segment
        self._fd = fd  # active segment, file position == self._offset
        self._offset = offset
        self._fresh = fresh  # active segment holds nothing but its head records
        self._hard_state = hard_state  # last hard state written
        self._snapshot = snapshot  # last snapshot marker written
        self._last_index = last_index  # index of the last entry written (or marker beyond it)
        self._segment_size = segment_size
        self._observer = observer
        self._lock = threading.Lock()
        self._unsynced = False  # bytes written since the last fdatasync
        self._failed: BaseException | None = None
        self._closed = False
        self._fsync_delay = 0.0
        # The log's entries from the latest snapshot marker on, as written (the caller's
        # objects, which its Raft storage holds too): what a cut at the next marker
        # carries into the new segment. Trimmed at each marker.
        self._tail: list[Entry] = list(tail)
        self.snapshot_cut_bytes = SNAPSHOT_CUT_BYTES
        # Plain counters for tests and the exporter's scrape-time collector.
        self.records_written = 0
        self.entries_written = 0
        self.bytes_written = 0
        self.fsyncs = 0
        self.segments_cut = 0
        self.segments_released = 0
        self.last_fsync_seconds = 0.0

    # ---- construction ------------------------------------------------------
    @staticmethod
    def exists(directory: str) -> bool:
        """True when `directory` holds at least one segment (create vs open at boot)."""
        return os.path.isdir(directory) and bool(list_segments(directory))

    @staticmethod
    def read_metadata(directory: str) -> bytes:
        """The metadata (member id, cluster id) from the newest segment's head, without a
        replay: who a member is must be known before its WAL is opened."""
        names = list_segments(directory)
        if not names:
            raise WALError(f"no WAL segments in {directory}")
        with open(os.path.join(directory, names[-1].filename), "rb") as fh:
            data = fh.read(1 << 16)
        offset = 0
        for _ in range(4):  # segment header, metadata, hard state, snapshot marker
            fr = read_frame(data, offset)
            if fr.status is not FrameStatus.OK:
                break
            if fr.rtype == RecordType.METADATA:
                return fr.payload
            offset = fr.end
        raise WALError(f"no metadata record at the head of {names[-1].filename}")

    @classmethod
    def create(
        cls,
        directory: str,
        metadata: bytes,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        observer: WalObserver = NULL_WAL_OBSERVER,
    ) -> WAL:
        """Initialise a new WAL holding `metadata` (opaque: member id, cluster id).

        The first segment appears atomically (see segment.py), so a crash during
        create leaves either no WAL or a complete empty one.
        """
        if segment_size <= 0:
            raise ValueError(f"segment_size must be > 0, got {segment_size}")
        if cls.exists(directory):
            raise WALExistsError(f"wal already exists in {directory}")
        os.makedirs(directory, exist_ok=True)
        parent = os.path.dirname(os.path.abspath(directory))
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(pfd)  # the wal directory's own entry in its parent
        finally:
            os.close(pfd)
        dir_fd = _lock_dir(directory)
        try:
            name = SegmentName(seq=0, first_index=0)
            head = head_records(name, metadata, None, None)
            fd = create_segment(directory, name, head, segment_size)
        except BaseException:
            os.close(dir_fd)
            raise
        os.lseek(fd, len(head), os.SEEK_SET)
        path = os.path.join(directory, name.filename)
        log.info("created wal dir=%s segment_size=%d", directory, segment_size)
        return cls(
            directory,
            dir_fd,
            metadata=metadata,
            segments=[SegmentInfo(name=name, path=path, max_index=0)],
            fd=fd,
            offset=len(head),
            fresh=True,
            hard_state=None,
            snapshot=None,
            last_index=0,
            segment_size=segment_size,
            observer=observer,
        )

    @classmethod
    def open(
        cls,
        directory: str,
        snapshot: SnapshotMetadata | WalSnapshot | None = None,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        observer: WalObserver = NULL_WAL_OBSERVER,
    ) -> tuple[WAL, Recovered]:
        """Replay the WAL and open it for appending.

        `snapshot` is the snapshot the caller restores from (the newest valid
        snapshot file); the returned entries are those after it. Without one,
        entries after the WAL's latest snapshot marker are returned. If the
        recovered hard state's commit is below the start snapshot's index it is
        raised to it (a snapshot holds only committed entries). Raises
        WALCorruptError (refuse to start), WALNotFoundError, WALLockedError.
        """
        if segment_size <= 0:
            raise ValueError(f"segment_size must be > 0, got {segment_size}")
        dir_fd = _lock_dir(directory)
        try:
            for tmp in list_tmp_files(directory):
                log.info("removing unfinished segment file=%s", os.path.join(directory, tmp))
                os.unlink(os.path.join(directory, tmp))
            os.fsync(dir_fd)
            start = _as_marker(snapshot)
            result = scan(directory, start)
            active = result.segments[-1]
            fd = os.open(active.path, os.O_WRONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(dir_fd)
            raise
        try:
            if result.torn is not None:
                # Zero the torn bytes so the next append is followed by zeros only.
                torn = result.torn
                os.pwrite(fd, bytes(torn.end - torn.offset), torn.offset)
                os.fdatasync(fd)
            if os.fstat(fd).st_size < segment_size:
                preallocate(fd, segment_size)
                os.fsync(fd)
            os.lseek(fd, result.tail_offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            os.close(dir_fd)
            raise
        recovered = result.recovered
        hs = recovered.hard_state  # as read: the WAL's own state, before any advance below
        if start is not None and hs is not None and hs.commit < start.index:
            recovered.hard_state = HardState(term=hs.term, vote=hs.vote, commit=start.index)
        log.info(
            "opened wal dir=%s segments=%d entries=%d snapshot_index=%d last_index=%d",
            directory,
            len(result.segments),
            len(recovered.entries),
            recovered.snapshot.index if recovered.snapshot else 0,
            result.last_index,
        )
        wal = cls(
            directory,
            dir_fd,
            metadata=recovered.metadata,
            segments=result.segments,
            fd=fd,
            offset=result.tail_offset,
            fresh=active.max_index == 0,
            hard_state=hs,
            snapshot=recovered.snapshot,
            last_index=result.last_index,
            segment_size=segment_size,
            observer=observer,
            tail=recovered.entries,
        )
        return wal, recovered

    # ---- the fault knob ------------------------------------------------------
    @property
    def fsync_delay_seconds(self) -> float:
        """Lab fault: extra sleep inside the timed fsync section (0 = off)."""
        return self._fsync_delay

    @fsync_delay_seconds.setter
    def fsync_delay_seconds(self, seconds: float) -> None:
        value = float(seconds)
        if math.isnan(value) or value < 0:
            raise ValueError(f"fsync delay must be >= 0 seconds, got {seconds!r}")
        self._fsync_delay = value

    # ---- read-only views -----------------------------------------------------
    @property
    def directory(self) -> str:
        return self._dir

    @property
    def segment_size(self) -> int:
        return self._segment_size

    @property
    def active_segment(self) -> str:
        """Path of the segment appends go to."""
        return self._segments[-1].path

    @property
    def tail_offset(self) -> int:
        """Byte offset in the active segment where the next record will start."""
        return self._offset

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def segment_paths(self) -> list[str]:
        return [seg.path for seg in self._segments]

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def hard_state(self) -> HardState | None:
        return self._hard_state

    @property
    def snapshot(self) -> WalSnapshot | None:
        return self._snapshot

    @property
    def metadata(self) -> bytes:
        return self._metadata

    # ---- writing -------------------------------------------------------------
    def save(self, hard_state: HardState | None, entries: Sequence[Entry], must_sync: bool) -> None:
        """Append `entries` and `hard_state` (if changed) in one write; fdatasync if must_sync.

        Returns only after the fdatasync returned. Entries must be in index
        order; an entry at index i supersedes any earlier entry >= i (recovery
        applies that). Raises WALWriteError; the WAL is unusable afterwards.
        """
        with self._lock:
            self._check_writable()
            buf = bytearray()
            for entry in entries:
                frame_entry(buf, entry)
            records = len(entries)
            if hard_state is not None and hard_state != self._hard_state:
                frame(buf, RecordType.HARD_STATE, encode_hard_state(hard_state))
                records += 1
            if not buf:
                if must_sync and self._unsynced:
                    self._guarded(self._sync)
                return
            first_index = entries[0].index if entries else self._last_index + 1
            self._guarded(lambda: self._append(bytes(buf), records, first_index))
            if entries:
                self._last_index = entries[-1].index
                active = self._segments[-1]
                active.max_index = max(active.max_index, entries[-1].index)
                active.first_entry = active.first_entry or entries[0].index
                self._track(entries)
                self.entries_written += len(entries)
            if hard_state is not None:
                self._hard_state = hard_state
            if must_sync:
                self._guarded(self._sync)

    def save_snapshot(self, snapshot: SnapshotMetadata | WalSnapshot) -> None:
        """Durably record that a snapshot at (index, term) exists (always fsyncs).

        Write the snapshot file first (Snapshotter.save), then this marker, then
        release: a marker then never points at a missing snapshot file.

        When the active segment holds `snapshot_cut_bytes` or more and the log holds the
        snapshot's entry, the marker starts a new segment instead, which repeats the log
        from that entry on (written and fsynced before it appears, as every segment's
        head): `release_to` can then delete every older segment, and a restart reads
        only the entries after the snapshot, not the whole segment before it (~65 ms per
        20k entries of 1 KiB). Otherwise it is appended to the active segment.
        """
        marker = WalSnapshot(index=snapshot.index, term=snapshot.term)
        with self._lock:
            self._check_writable()
            carried = self._carried(marker.index)
            if carried:
                self._guarded(lambda: self._cut_at_snapshot(marker, carried))
            else:
                buf = bytearray()
                frame(buf, RecordType.SNAPSHOT, encode_snapshot(marker))
                next_index = max(self._last_index, marker.index) + 1
                self._guarded(lambda: self._append(bytes(buf), 1, next_index))
            self._snapshot = marker
            self._last_index = max(self._last_index, marker.index)
            if self._unsynced:
                self._guarded(self._sync)
            self._trim_tail(marker.index)

    def sync(self) -> None:
        """fdatasync now if anything written is not yet durable."""
        with self._lock:
            self._check_writable()
            if self._unsynced:
                self._guarded(self._sync)

    def release_to(self, index: int) -> int:
        """Delete the oldest segments a restart from `index` does not read; returns how many.

        Those are the segments whose every entry is below `index`, and those before a
        segment whose first entry is at or below `index` + 1 (replay truncates the log at
        that entry: nothing older survives it). The active segment is always kept, and
        `index` is clamped to the latest snapshot marker, so nothing a restart
        needs is ever deleted (each segment's head repeats the metadata, hard
        state and marker, so older segments are not needed for those).
        """
        with self._lock:
            self._check_writable()
            limit = self._snapshot.index if self._snapshot is not None else 0
            if index > limit:
                log.warning(
                    "wal release_to beyond the latest snapshot marker index=%d clamped_to=%d",
                    index,
                    limit,
                )
                index = limit
            if self._unsynced:  # a first entry relied on below is durable before
                self._guarded(self._sync)
            doomed: list[str] = []
            while len(self._segments) > 1 and self._releasable(index):
                doomed.append(self._segments.pop(0).path)
            kept = len(self._segments)
        # NB: outside the lock, which the Ready loop's saves take: a 64 MB file's unlink
        # and the directory's fsync are milliseconds, and nothing reads these files again.
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if doomed:
            self._guarded(lambda: fsync_dir(self._dir))  # its own fd: close() may run
            self.segments_released += len(doomed)
            log.info(
                "released wal segments index=%d removed=%d kept=%d first=%s",
                index,
                len(doomed),
                kept,
                os.path.basename(doomed[0]),
            )
        return len(doomed)

    def close(self) -> None:
        """Flush anything unsynced, close the segment and release the directory lock."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._failed is None and self._unsynced:
                    self._sync()
            finally:
                os.close(self._fd)
                os.close(self._dir_fd)

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- internals (called with self._lock held) ----------------------------
    def _check_writable(self) -> None:
        if self._closed:
            raise WALClosedError(f"wal {self._dir} is closed")
        if self._failed is not None:
            raise WALWriteError(
                f"wal {self._dir} is unusable after an earlier write failure: {self._failed}"
            )

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run a disk action; any OSError makes the WAL fail-stop with WALWriteError."""
        try:
            action()
        except OSError as err:
            self._failed = err
            log.error(
                "wal write failed; refusing further writes file=%s offset=%d errno=%s error=%s",
                self.active_segment,
                self._offset,
                err.errno,
                err.strerror,
            )
            raise WALWriteError(
                f"wal write failed: file={self.active_segment} offset={self._offset}: {err}"
            ) from err

    def _append(self, data: bytes, records: int, first_index: int) -> None:
        """One os.write of the whole batch, cutting to a new segment first if it won't fit."""
        if not self._fresh and self._offset + len(data) > self._segment_size:
            self._cut(first_index)
        started = time.perf_counter()
        view = memoryview(data)
        written = os.write(self._fd, view)
        while written < len(data):  # a short write to a regular file is rare; finish it
            written += os.write(self._fd, view[written:])
        took = time.perf_counter() - started
        self._offset += len(data)
        self._fresh = False
        self._unsynced = True
        self.records_written += records
        self.bytes_written += len(data)
        self._observer.on_write(len(data), took)

    def _sync(self) -> None:
        """The timed section: fdatasync plus the lab's injected delay, then the hook."""
        started = time.perf_counter()
        os.fdatasync(self._fd)
        delay = self._fsync_delay
        if delay > 0:
            time.sleep(delay)  # NB: inside the timed section on purpose: the metric must show it
        took = time.perf_counter() - started
        self._unsynced = False
        self.fsyncs += 1
        self.last_fsync_seconds = took
        self._observer.on_fsync(took)

    def _cut(self, first_index: int) -> None:
        """Seal the active segment (durable, trimmed) and start the next one."""
        self._sync()  # recovery treats any bad record in an older segment as corruption
        os.ftruncate(self._fd, self._offset)  # give back the unused preallocated space
        os.fsync(self._fd)
        name = SegmentName(seq=self._segments[-1].name.seq + 1, first_index=first_index)
        head = head_records(name, self._metadata, self._hard_state, self._snapshot)
        self._start_segment(name, head, SegmentInfo(name, "", max_index=0))
        self._fresh = True
        log.info("wal segment cut file=%s first_index=%d", name.filename, first_index)

    def _cut_at_snapshot(self, marker: WalSnapshot, carried: list[Entry]) -> None:
        """Start a segment whose head is the marker and the log from its entry on.

        The old segment is only synced, not trimmed: `release_to` deletes it next.
        """
        self._sync()  # recovery treats any bad record in an older segment as corruption
        name = SegmentName(seq=self._segments[-1].name.seq + 1, first_index=marker.index)
        head = bytearray(head_records(name, self._metadata, self._hard_state, marker))
        for entry in carried:
            frame_entry(head, entry)
        info = SegmentInfo(name, "", max_index=carried[-1].index, first_entry=carried[0].index)
        self._start_segment(name, bytes(head), info)
        self._fresh = False
        log.info(
            "wal segment cut at a snapshot file=%s snapshot_index=%d carried=%d",
            name.filename,
            marker.index,
            len(carried),
        )

    def _start_segment(self, name: SegmentName, head: bytes, info: SegmentInfo) -> None:
        """Create segment `name` holding `head` (durably) and make it the active one."""
        fd = create_segment(self._dir, name, head, self._segment_size)
        os.lseek(fd, len(head), os.SEEK_SET)
        os.close(self._fd)
        self._fd = fd
        self._offset = len(head)
        info.path = os.path.join(self._dir, name.filename)
        self._segments.append(info)
        self.segments_cut += 1

    def _releasable(self, index: int) -> bool:
        """Whether the oldest segment holds nothing a restart from `index` replays."""
        oldest, following = self._segments[0], self._segments[1]
        return oldest.max_index < index or 0 < following.first_entry <= index + 1

    def _track(self, entries: Sequence[Entry]) -> None:
        """Keep the tail equal to the log: an entry replaces the tail from its index on."""
        tail, first = self._tail, entries[0].index
        if tail and not tail[0].index <= first <= tail[-1].index + 1:
            tail.clear()  # not contiguous with it (a snapshot beyond the log came between)
        elif tail:
            del tail[first - tail[0].index :]
        tail.extend(entries)

    def _carried(self, index: int) -> list[Entry]:
        """The log from entry `index` on, when a marker at `index` should cut (else [])."""
        tail = self._tail
        if self._offset < self.snapshot_cut_bytes or not tail:
            return []
        if not tail[0].index <= index <= tail[-1].index:
            return []
        return tail[index - tail[0].index :]

    def _trim_tail(self, index: int) -> None:
        """Drop the tail's entries before a marker at `index`."""
        tail = self._tail
        if tail and index > tail[-1].index:
            tail.clear()
        elif tail and index > tail[0].index:
            del tail[: index - tail[0].index]


__all__ = ["DEFAULT_SEGMENT_SIZE", "WAL", "WALError"]
