"""Maintenance.Snapshot: the member's database as a stream, checksummed as etcd's is.

The wire behaviour is etcd 3.4's (v3rpc/maintenance.go): the database image is sent
in blobs of 32 KiB, each message saying how many database bytes remain after it,
then one last message whose blob is the sha256 of every byte sent before it
(`remaining_bytes` 0). A client that saves the blobs in order gets database bytes +
a 32-byte sha256 trailer: what `etcdctl snapshot save` writes and what
`raftmon snapshot restore` verifies.

The image is a point-in-time copy made with SQLite's backup API on its own
connection in a worker thread (its cost grows with the store, so it never runs on
the event loop), written to a file beside the member's data and unlinked as soon as
it is open: a crash leaves no stray copy, and a client that reads slowly holds only
a file descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from typing import TYPE_CHECKING, BinaryIO

from node.mvcc import requests as rq

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from node.mvcc.store import KVStore

log = logging.getLogger(__name__)

SEND_BUFFER_BYTES = 32 * 1024  # etcd's snapshotSendBufferSize
READ_AHEAD_BLOBS = 32  # blobs read per trip to the worker thread (1 MiB)
SHA256_SIZE = 32
SECTOR_BYTES = 512  # etcd's hasChecksum modulus: a database file is whole sectors


def has_checksum(size: int) -> bool:
    """etcd's hasChecksum: a file of whole sectors plus 32 bytes ends in a sha256 trailer.

    A database is whole pages (SQLite's 4 KiB, as bbolt's), so a saved snapshot is
    sectors + 32 bytes, and a database copied from a data dir has no trailer.
    """
    return size % SECTOR_BYTES == SHA256_SIZE


def _image(kv: KVStore, directory: str) -> BinaryIO:
    """Worker thread: a consistent copy of the database, open for reading and unlinked."""
    import tempfile  # here: with shutil and random, ~3 ms of every member's start

    fd, path = tempfile.mkstemp(prefix=".client-snapshot-", suffix=".db", dir=directory)
    os.close(fd)
    try:
        kv.backup(path, durable=False)  # read once and gone: no fsync
        return open(path, "rb")  # the stream closes it
    finally:
        for leftover in (path, path + ".partial"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


def _read_blobs(f: BinaryIO) -> list[bytes]:
    """Worker thread: the next READ_AHEAD_BLOBS blobs ([] at the end of the file)."""
    blobs = []
    for _ in range(READ_AHEAD_BLOBS):
        blob = f.read(SEND_BUFFER_BYTES)
        if not blob:
            break
        blobs.append(blob)
    return blobs


async def stream_snapshot(kv: KVStore, directory: str) -> AsyncGenerator[rq.SnapshotChunk, None]:
    """The Maintenance.Snapshot stream of `kv`'s database; temporary copy in `directory`.

    The open batch is committed first (on the loop, where the store is written), so
    the image holds every entry applied before the call.
    """
    kv.commit()
    f = await asyncio.to_thread(_image, kv, directory)
    with f:
        total = os.fstat(f.fileno()).st_size
        log.info(
            "sending database snapshot to client",
            extra={"fields": {"total-bytes": total}},
        )
        digest = hashlib.sha256()
        sent = 0
        while sent < total:
            blobs = await asyncio.to_thread(_read_blobs, f)
            if not blobs:
                raise RuntimeError(f"snapshot image ended at {sent} of {total} bytes")
            for blob in blobs:
                sent += len(blob)
                digest.update(blob)
                yield rq.SnapshotChunk(remaining_bytes=max(0, total - sent), blob=blob)
        log.info(
            "sending database sha256 checksum to client",
            extra={"fields": {"total-bytes": total, "checksum-size": SHA256_SIZE}},
        )
        yield rq.SnapshotChunk(remaining_bytes=0, blob=digest.digest())
    log.info(
        "successfully sent database snapshot to client", extra={"fields": {"total-bytes": total}}
    )
