"""Snapshot files: Raft snapshot metadata, as etcd's snap package writes them.

Layout in the snapshot directory (etcd's naming):

    <term:016x>-<index:016x>.snap      metadata: magic, CRC32, length, JSON body
    <term:016x>-<index:016x>.snap.db   a database image, only in the old layout

As etcd's, a snapshot is normally a marker: the member's live database IS the
state at (or past) the snapshot's index, made durable before the marker is
written, so the marker holds index, term and ConfState and no image (`db_size`
-1 in its body). A database image exists only while one travels to a follower
(node/server/snapshots.py). Snapshots saved with an image (the old layout, and
`save(meta, image)`) still load: their body holds the image's size and checksum
(`db_crc32`, of the kind `db_checksum` names: node.imagesum, CRC-32 when absent), so
`load_newest` proves both files whole before anyone restores from them.
Order of a save with an image: image first (moved into place, fsynced), then
the metadata file (temp name, fsync, rename, directory fsync); a crash leaves
at most an orphan image or a temp file, which `purge` removes.

Other files in the directory (the live `db` of the MVCC store, the transport's
incoming temp files) are never touched: only the patterns above are ours.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from typing import Any

from node import imagesum
from node.fsutil import fsync_dir, fsync_file
from node.raft.messages import ConfState, SnapshotMetadata
from node.wal.errors import SnapshotError
from node.wal.observer import NULL_WAL_OBSERVER, WalObserver

log = logging.getLogger(__name__)

SNAP_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
DB_SUFFIX = ".db"
TMP_SUFFIX = ".tmp"
MAGIC = b"RMSNAP01"
_HEAD = struct.Struct("<8sII")  # magic, crc32(body), len(body)
_CHUNK = 1 << 20


class _SnapCorrupt(ValueError):
    """A .snap file or its image that fails a check; load_newest skips it."""


def snap_name(meta: SnapshotMetadata) -> str:
    return f"{meta.term:016x}-{meta.index:016x}.snap"


def _file_crc(path: str, checksum: imagesum.Checksum) -> tuple[int, int]:
    """(size, checksum) of a file, read in 1 MiB chunks."""
    crc, size = 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crc = checksum(chunk, crc)
            size += len(chunk)
    return size, crc


def _encode(meta: SnapshotMetadata, db_size: int, db_crc: int) -> bytes:
    body = json.dumps(
        {
            "index": meta.index,
            "term": meta.term,
            "voters": list(meta.conf_state.voters),
            "learners": list(meta.conf_state.learners),
            "db_size": db_size,
            "db_crc32": db_crc,
            "db_checksum": imagesum.DEFAULT,
        },
        sort_keys=True,
    ).encode()
    return _HEAD.pack(MAGIC, zlib.crc32(body), len(body)) + body


def _decode(raw: bytes) -> tuple[SnapshotMetadata, int, int, imagesum.Checksum]:
    if len(raw) < _HEAD.size:
        raise _SnapCorrupt("file shorter than its header")
    magic, crc, length = _HEAD.unpack_from(raw)
    if magic != MAGIC:
        raise _SnapCorrupt(f"bad magic {magic!r}")
    body = raw[_HEAD.size :]
    if len(body) != length:
        raise _SnapCorrupt(f"body has {len(body)} bytes, header says {length}")
    if zlib.crc32(body) != crc:
        raise _SnapCorrupt("crc mismatch")
    try:
        obj: dict[str, Any] = json.loads(body)
        meta = SnapshotMetadata(
            index=int(obj["index"]),
            term=int(obj["term"]),
            conf_state=ConfState(
                voters=tuple(int(v) for v in obj["voters"]),
                learners=tuple(int(v) for v in obj["learners"]),
            ),
        )
        kind = str(obj.get("db_checksum", imagesum.LEGACY))
        return meta, int(obj["db_size"]), int(obj["db_crc32"]), imagesum.by_name(kind)
    except imagesum.UnknownChecksum as err:
        raise _SnapCorrupt(str(err)) from None
    except (ValueError, KeyError, TypeError) as err:
        raise _SnapCorrupt(f"bad body: {err}") from None


class Snapshotter:
    """Saves, finds and purges snapshot files in one directory (thread-safe)."""

    def __init__(self, directory: str, *, observer: WalObserver = NULL_WAL_OBSERVER) -> None:
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self._observer = observer
        self._lock = threading.Lock()
        # path -> (mtime_ns, size, result): skip re-hashing an image already verified
        self._verified: dict[str, tuple[int, int, tuple[SnapshotMetadata, str | None]]] = {}
        self.saves = 0
        self.purged = 0

    def save(self, meta: SnapshotMetadata, db: str | os.PathLike[str] | bytes | None = None) -> str:
        """Durably store `meta` (and an image: a file path, moved, or the bytes).

        Without `db` the snapshot is a marker (the live database is its state). A
        path is moved into place (renamed when on the same filesystem, else copied
        and the source removed). Returns the .snap path.
        """
        with self._lock:
            started = time.perf_counter()
            snap_path = os.path.join(self.dir, snap_name(meta))
            db_path = snap_path + DB_SUFFIX
            try:
                db_size, db_crc = self._store_image(db, db_path) if db is not None else (-1, 0)
                raw = _encode(meta, db_size, db_crc)
                tmp = snap_path + TMP_SUFFIX
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, raw)
                    fsync_started = time.perf_counter()
                    os.fsync(fd)
                    self._observer.on_snapshot_fsync(time.perf_counter() - fsync_started)
                finally:
                    os.close(fd)
                os.replace(tmp, snap_path)
                fsync_dir(self.dir)
            except OSError as err:
                log.error("snapshot save failed file=%s error=%s", snap_path, err)
                raise SnapshotError(f"snapshot save failed: file={snap_path}: {err}") from err
            self._verified.pop(snap_path, None)
            self.saves += 1
            self._observer.on_snapshot_save(time.perf_counter() - started)
            log.info(
                "saved snapshot file=%s index=%d term=%d db_bytes=%d",
                snap_path,
                meta.index,
                meta.term,
                db_size,
            )
            return snap_path

    def _store_image(self, db: str | os.PathLike[str] | bytes, db_path: str) -> tuple[int, int]:
        """Put the image at db_path durably; returns its (size, checksum). Times the db part."""
        started = time.perf_counter()
        if isinstance(db, bytes):
            tmp = db_path + TMP_SUFFIX
            with open(tmp, "wb") as fh:
                fh.write(db)
                fh.flush()
                fsync_started = time.perf_counter()
                os.fsync(fh.fileno())
                fsync_took = time.perf_counter() - fsync_started
            os.replace(tmp, db_path)
            size, crc = len(db), imagesum.default()(db, 0)
        else:
            src = os.fspath(db)
            fsync_started = time.perf_counter()
            fsync_file(src)
            fsync_took = time.perf_counter() - fsync_started
            if os.path.abspath(src) != os.path.abspath(db_path):
                try:
                    os.replace(src, db_path)
                except OSError as err:
                    if err.errno != errno.EXDEV:  # another filesystem: copy instead
                        raise
                    import shutil  # here: a rare path, and its import cost every start ~5 ms

                    tmp = db_path + TMP_SUFFIX
                    shutil.copyfile(src, tmp)
                    fsync_file(tmp)
                    os.replace(tmp, db_path)
                    os.unlink(src)
            size, crc = _file_crc(db_path, imagesum.default())
        fsync_dir(self.dir)
        self._observer.on_snapshot_db_fsync(fsync_took)
        self._observer.on_snapshot_db_save(time.perf_counter() - started)
        return size, crc

    def _candidates(self) -> list[tuple[int, int, str]]:
        """(index, term, filename) of every .snap file, newest first."""
        found = []
        for name in os.listdir(self.dir):
            match = SNAP_RE.match(name)
            if match is not None:
                found.append((int(match.group(2), 16), int(match.group(1), 16), name))
        found.sort(reverse=True)
        return found

    def load_newest(self) -> tuple[SnapshotMetadata, str | None] | None:
        """The newest snapshot that verifies, with its image's path (None: a marker).

        Corrupt or incomplete ones are skipped with a WARNING (and left on disk
        for an operator to inspect; purge removes them once they are old).
        """
        with self._lock:
            for _index, _term, name in self._candidates():
                path = os.path.join(self.dir, name)
                try:
                    return self._verify(path)
                except (OSError, _SnapCorrupt) as err:
                    log.warning("skipping unusable snapshot file=%s reason=%s", path, err)
            return None

    def _verify(self, path: str) -> tuple[SnapshotMetadata, str | None]:
        db_path = path + DB_SUFFIX
        with open(path, "rb") as fh:
            meta, db_size, db_crc, checksum = _decode(fh.read())
        if snap_name(meta) != os.path.basename(path):
            raise _SnapCorrupt(f"content says index={meta.index} term={meta.term}")
        if db_size < 0:
            return meta, None  # a marker: the live database is the state
        st = os.stat(db_path)
        cached = self._verified.get(path)
        if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
            return cached[2]
        size, crc = _file_crc(db_path, checksum)
        if size != db_size or crc != db_crc:
            raise _SnapCorrupt(f"db image size/crc mismatch ({size} bytes, expected {db_size})")
        result = (meta, db_path)
        self._verified[path] = (st.st_mtime_ns, st.st_size, result)
        return result

    def purge(self, keep: int = 2) -> int:
        """Delete all but the newest `keep` snapshots (with images) and stale leftovers.

        Leftovers are images whose .snap was never written (older than the
        oldest kept snapshot) and temp files of interrupted saves.
        """
        if keep < 1:
            raise ValueError("keep must be >= 1")
        with self._lock:
            candidates = self._candidates()
            kept = candidates[:keep]
            oldest_kept = min(((i, t) for i, t, _ in kept), default=(0, 0))
            doomed: list[str] = []
            for _, _, name in candidates[keep:]:
                doomed += [name, name + DB_SUFFIX]
            for name in os.listdir(self.dir):
                stem = name.removesuffix(TMP_SUFFIX).removesuffix(DB_SUFFIX)
                match = SNAP_RE.match(stem)
                if match is None or name == stem:
                    continue  # not ours (the live `db`, transport files) or a .snap itself
                if name.endswith(TMP_SUFFIX):
                    doomed.append(name)  # interrupted save
                elif (int(match.group(2), 16), int(match.group(1), 16)) < oldest_kept:
                    doomed.append(name)  # orphan image (or one already listed above)
            removed = 0
            for name in dict.fromkeys(doomed):
                path = os.path.join(self.dir, name)
                self._verified.pop(path, None)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
            if removed:
                fsync_dir(self.dir)
                self.purged += removed
                log.info("purged snapshot files removed=%d kept=%d", removed, len(kept))
            return removed
