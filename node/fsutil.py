"""Small durable-filesystem helpers shared by the WAL, the snapshotter and the mvcc store.

A rename or unlink is only durable once the directory holding it is fsynced
(POSIX says nothing about it otherwise, and ext4/xfs really lose such changes
on power loss), so every create/remove goes through these helpers. A base
module: the storage leaves (wal, mvcc) use it and never import each other.
"""

from __future__ import annotations

import errno
import os


def fsync_file(path: str) -> None:
    """Make a file's contents durable (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make the directory's entries (creations, renames, unlinks) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def preallocate(fd: int, size: int) -> None:
    """Reserve `size` bytes of real blocks so appends never change the file size.

    With the blocks allocated up front, fdatasync of an append does not have to
    write the inode's size too (etcd preallocates its 64 MiB segments for the
    same reason), and a full disk shows up when a segment is created rather
    than in the middle of a record. Falls back to extending the file (sparse)
    where the filesystem cannot allocate.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        # the filesystem cannot allocate; ENOSPC and friends must surface
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)


def all_zero(data: bytes, start: int, end: int | None = None) -> bool:
    """True when data[start:end] holds only zero bytes (C speed, no slicing copy)."""
    stop = len(data) if end is None else min(end, len(data))
    if start >= stop:
        return True
    return data.count(0, start, stop) == stop - start
