"""Segment files: names, creation, listing.

A segment is `<seq:016x>-<first_index:016x>.wal` (etcd's naming): `seq` counts
segments from 0 without gaps, `first_index` is the index the first entry
appended to it was expected to have. Names sort in log order.

Creation is atomic: the file is written under a `.tmp` name (segment header,
metadata, current hard state and snapshot marker), preallocated, fsynced,
renamed into place, and the directory fsynced. So a file with a final name
always starts with a complete, durable header; a crash mid-creation leaves at
most a `.tmp` file that `WAL.open` deletes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.fsutil import fsync_dir, preallocate
from node.wal.record import (
    RecordType,
    SegmentHeader,
    WalSnapshot,
    encode_hard_state,
    encode_segment,
    encode_snapshot,
    frame,
)

if TYPE_CHECKING:
    from node.raft.messages import HardState

SEGMENT_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
TMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class SegmentName:
    """A segment's identity as parsed from its file name."""

    seq: int
    first_index: int

    @property
    def filename(self) -> str:
        return f"{self.seq:016x}-{self.first_index:016x}.wal"


def parse_name(filename: str) -> SegmentName | None:
    """The segment identity in `filename`, or None for anything that is not a segment."""
    match = SEGMENT_RE.match(filename)
    if match is None:
        return None
    return SegmentName(seq=int(match.group(1), 16), first_index=int(match.group(2), 16))


def list_segments(directory: str) -> list[SegmentName]:
    """Segments in `directory` in log order (by seq)."""
    names = (parse_name(name) for name in os.listdir(directory))
    return sorted((n for n in names if n is not None), key=lambda n: n.seq)


def list_tmp_files(directory: str) -> list[str]:
    """Leftovers of a crash during segment creation: never referenced, safe to delete."""
    return sorted(
        name
        for name in os.listdir(directory)
        if name.endswith(TMP_SUFFIX) and parse_name(name[: -len(TMP_SUFFIX)]) is not None
    )


def head_records(
    name: SegmentName, metadata: bytes, hard_state: HardState | None, snapshot: WalSnapshot | None
) -> bytes:
    """The records every segment starts with, so each segment stands on its own.

    Carrying the metadata, the latest hard state and the latest snapshot marker
    at the head of every segment is what lets `release_to` delete older
    segments without losing any of them.
    """
    buf = bytearray()
    frame(buf, RecordType.SEGMENT, encode_segment(SegmentHeader(name.seq, name.first_index)))
    frame(buf, RecordType.METADATA, metadata)
    if hard_state is not None:
        frame(buf, RecordType.HARD_STATE, encode_hard_state(hard_state))
    if snapshot is not None:
        frame(buf, RecordType.SNAPSHOT, encode_snapshot(snapshot))
    return bytes(buf)


def create_segment(directory: str, name: SegmentName, head: bytes, size: int) -> int:
    """Durably create segment `name` holding `head`; returns an fd positioned after it.

    The returned fd is open for writing; the caller owns it.
    """
    final = os.path.join(directory, name.filename)
    tmp = final + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        preallocate(fd, max(size, len(head)))
        written = 0
        while written < len(head):
            written += os.pwrite(fd, head[written:], written)
        os.fsync(fd)
        os.rename(tmp, final)
        fsync_dir(directory)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return fd
