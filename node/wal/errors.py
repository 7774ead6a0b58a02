"""The WAL's error types: each says what the operator must do differently.

A corrupt log must stop the member (refusing to start is safe, guessing is not);
a failed write must stop the writer (after a failed write or fdatasync the page
cache state is unknown, so the only honest continuation is a restart that
re-reads what actually reached the disk).
"""

from __future__ import annotations


class WALError(Exception):
    """Base class for every error raised by node.wal."""


class WALExistsError(WALError):
    """`WAL.create` was asked to initialise a directory that already holds a WAL."""


class WALNotFoundError(WALError):
    """`WAL.open` found no segment files in the directory."""


class WALLockedError(WALError):
    """Another process (or another WAL object) holds the directory's lock."""


class WALCorruptError(WALError):
    """A record before the tail fails its CRC or framing: refuse to start.

    The message always names the segment file and the byte offset of the bad
    record so an operator can inspect it (and, if they choose, restore from a
    peer or a backup). It is never raised for a torn last record, which is the
    normal footprint of a crash in the middle of an unacknowledged write.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"wal corrupt: file={path} offset={offset}: {reason}")


class WALWriteError(WALError):
    """A write or fdatasync failed (ENOSPC, EIO, ...): nothing of that save is durable.

    The WAL refuses further writes after this (fail-stop, as etcd does): the
    bytes that may have reached the file form a torn tail that the next
    `WAL.open` truncates with a warning.
    """


class WALClosedError(WALError):
    """The WAL was used after `close()`."""


class SnapshotError(WALError):
    """A snapshot file could not be written."""
