"""Replay of the segment files: torn-tail vs corruption, and the log they describe.

Rules (the WAL's durability contract, in the order recovery applies them):

1. Segments must be numbered 0..n without gaps after the first one present
   (older ones may have been released). A gap is corruption.
2. Every segment starts with a SEGMENT record matching its file name and a
   METADATA record equal to every other segment's.
3. A record that fails its header CRC, its payload CRC or runs past the end of
   the file is a *torn tail* when it is in the last segment and nothing but
   zero bytes follows the place it claims to end (its header's length when
   the header CRC holds, the header itself otherwise). That is the footprint
   of a crash in the middle of one `os.write`: the record was never fsynced,
   so it was never acknowledged. It is reported (WARNING, file and offset) and
   the caller zeroes it before appending.
4. Any other bad record — one followed by valid data, or one in an older
   segment (which was fsynced before the next segment was cut) — is
   corruption: ERROR log and `WALCorruptError(file, offset)`. So is a zero
   gap followed by data.
5. Entries: an entry with index i replaces everything at index >= i (a new
   leader may truncate a follower's uncommitted tail, Raft §5.3). Entries at
   or below the start snapshot are skipped; the kept entries must be
   contiguous from start+1, otherwise some were lost and recovery refuses.

Known limit (documented, as in etcd): a bit flip in the very last record of
the log is indistinguishable from a torn write and is truncated with a warning.
A power loss that persisted pages of the last unsynced write out of order (a
zero hole followed by data of that same write) is reported as corruption:
refusing to start is the safe side of that ambiguity.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import mmap
import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from node.fsutil import all_zero
from node.raft.messages import EntryType, HardState
from node.wal.errors import WALCorruptError, WALNotFoundError
from node.wal.record import (
    HEADER,
    HEADER_CRC,
    HEADER_SIZE,
    Frame,
    FrameStatus,
    PayloadError,
    RecordType,
    WalSnapshot,
    decode_entry,
    decode_entry_lazily,
    decode_hard_state,
    decode_segment,
    decode_snapshot,
    encode_hard_state,
    read_frame,
)
from node.wal.segment import SegmentName, list_segments

if TYPE_CHECKING:
    from node.raft.messages import Entry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Recovered:
    """What the WAL held: the driver loads this into MemoryStorage at boot."""

    metadata: bytes
    hard_state: HardState | None  # the last one written; None if none ever was
    snapshot: WalSnapshot | None  # the latest snapshot marker; None if none
    entries: list[Entry] = field(default_factory=list)  # after the start snapshot, contiguous


@dataclass(slots=True)
class SegmentInfo:
    """What the writer needs to know about one segment after replay."""

    name: SegmentName
    path: str
    max_index: int  # highest entry index recorded in it (0: no entries)
    # Index of its first entry record (0: none). Replay truncates the log there, so no
    # entry of an older segment at or past it survives: with it at or below a snapshot's
    # index + 1, the older segments hold nothing a restart from that snapshot replays.
    first_entry: int = 0


@dataclass(frozen=True, slots=True)
class TornTail:
    """A torn last record: bytes [offset, end) of `path` must be zeroed before appending."""

    path: str
    offset: int
    end: int


@dataclass(slots=True)
class Scan:
    """The full result of reading a WAL directory."""

    recovered: Recovered
    segments: list[SegmentInfo]
    tail_offset: int  # where the next record goes in the last segment
    last_index: int  # index of the last entry in the log (or the marker, if beyond)
    torn: TornTail | None


# An ENTRY payload starts with term, index (u64 each) and the entry type (u8): replay
# reads the index and the type there and decodes the entry only if it is kept. Most of a
# restarted member's WAL is entries its snapshot already covers (up to a whole segment
# of them), and building each one cost more than reading and checking its record.
_ENTRY_INDEX = struct.Struct("<Q")
_ENTRY_INDEX_OFFSET = 8
_ENTRY_TYPE_OFFSET = 16
_ENTRY_TYPES = frozenset(int(t) for t in EntryType)
_ENTRY_HEAD = 17
_ENTRY_RECORD = int(RecordType.ENTRY)
_HARD_STATE_RECORD = int(RecordType.HARD_STATE)
_HARD_STATE_SIZE = len(encode_hard_state(HardState()))
_HEADER_AND_CRC = struct.Struct("<" + HEADER.format.lstrip("<") + HEADER_CRC.format.lstrip("<"))


# An entry record, checked (CRCs, length, type) but not decoded yet: its index, its
# payload (a view of the mapped segment), and where it is (segment path and offset). A
# tuple: ~10k of them at 10k entries, each a slotted object cost ~0.3 µs more.
_Positioned = tuple[int, memoryview, str, int]


def _corrupt(path: str, offset: int, reason: str) -> WALCorruptError:
    err = WALCorruptError(path, offset, reason)
    log.error(
        "wal corruption detected: refusing to start file=%s offset=%d reason=%s",
        path,
        offset,
        reason,
    )
    return err


def _first_nonzero(data: bytes, start: int) -> int:
    """Offset of the first non-zero byte at or after `start` (error path only)."""
    tail = data[start:]
    return start + (len(tail) - len(tail.lstrip(b"\x00")))


# The step of the backward search for a segment's zero tail, and the zeros it compares to.
ZERO_TAIL_CHUNK = 1 << 20
_ZEROS = bytes(ZERO_TAIL_CHUNK)


def data_end(fd: int, file_size: int) -> int:
    """Where the file's data ends by the filesystem's account: past it are only holes and
    preallocated blocks never written (SEEK_HOLE, then SEEK_DATA finding nothing after),
    which read as zeros. `file_size` when it cannot tell or data follows a hole.

    A 64 MB segment's preallocated blocks need not be read to be known as zeros: reading
    them made the kernel zero-fill 64 MB of page cache on every start (~15 ms, 40+ on the
    shared box). Blocks read or written once count as data (cached), so are compared.
    """
    hole = file_size
    try:
        hole = os.lseek(fd, 0, os.SEEK_HOLE)
        if hole < file_size:
            os.lseek(fd, hole, os.SEEK_DATA)
    except OSError as err:
        return hole if err.errno == errno.ENXIO else file_size
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return file_size  # no hole, or data after one (a sparse middle): compare it all


def _written_end(fd: int, file_size: int) -> int:
    """Where a segment's zero tail starts: every byte of the file at or after it is zero.

    A segment is preallocated (64 MB) and filled from the front, so most of the last one
    is zeros. Reading all of it and counting its zeros was ~0.1 s of CPU on every start
    (three members on two cores pay it at once); comparing it from the end, a chunk at a
    time in one reused buffer, costs a few ms, and only the written part is read. The
    zero check is the same as before: a non-zero byte anywhere is before the returned end,
    which is just past the last one.
    """
    buf = bytearray(ZERO_TAIL_CHUNK)
    zeros = _ZEROS if len(_ZEROS) == ZERO_TAIL_CHUNK else bytes(ZERO_TAIL_CHUNK)
    end = data_end(fd, file_size)
    while end > 0:
        lo = max(0, end - ZERO_TAIL_CHUNK)
        want = end - lo
        got = os.preadv(fd, [buf if want == len(buf) else memoryview(buf)[:want]], lo)
        if got != want:
            break  # a short read: take the file from here on as written bytes
        if (buf != zeros) if want == len(buf) else (buf[:want] != zeros[:want]):
            # Written bytes in this chunk: the end is just past its last non-zero byte,
            # so nothing past the records is read again (or mapped: forget_zero_tail).
            return lo + len(bytes(memoryview(buf)[:want]).rstrip(b"\x00"))
        end = lo
    return end


def read_to_zero_tail(path: str) -> tuple[bytes, int]:
    """A segment's bytes up to its zero tail, and the file's size: every byte of the file
    at or after the returned bytes' end is zero."""
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        file_size = os.fstat(fd).st_size
        end = _written_end(fd, file_size)
        return (os.pread(fd, end, 0) if end else b""), file_size


def map_segment(path: str) -> tuple[memoryview, int]:
    """A segment mapped whole (read-only), and where its zero tail starts.

    Mapped, not read: a read copied the written part (~11 MB at 10k entries of 1 KiB)
    into fresh memory on every start, ~2,800 page faults and ~8 ms of CPU per member
    (this VM's faults cost ~3 µs each); mapping the page cache costs ~190 faults. The
    bytes past the returned end are zeros (checked as read_to_zero_tail checks them);
    they are in the mapping but touched only by a record that claims to reach them.
    """
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        file_size = os.fstat(fd).st_size
        end = _written_end(fd, file_size)
        if file_size == 0:
            return memoryview(b""), 0
        try:
            # The mapping outlives the file descriptor; the last view of it unmaps it.
            return memoryview(mmap.mmap(fd, file_size, prot=mmap.PROT_READ)), end
        except OSError:  # a filesystem that cannot map files: read the written part
            anonymous = memoryview(mmap.mmap(-1, file_size))  # zeros, untouched until read
            if end:
                os.preadv(fd, [anonymous[:end]], 0)
            return anonymous, end


def forget_zero_tail(path: str, end: int) -> None:
    """Drop the page cache's copies of the last segment's zeros past `end` (its records).

    Readahead reads far past what a read or a mapped page asks for (8 MB on this VM's
    disk), and cached pages of the preallocated tail count as data for SEEK_HOLE: once
    pages of the segment were evicted and read again, each restart found the zero tail a
    few MB further on and compared those MB again (measured: +8 MB a restart on one
    member of a cluster restarted in a loop). Clean pages only, and only those no mapping
    holds: nothing written is touched.
    """
    start = -(-end // mmap.PAGESIZE) * mmap.PAGESIZE
    with contextlib.suppress(OSError), open(path, "rb", buffering=0) as fh:
        os.posix_fadvise(fh.fileno(), start, 0, os.POSIX_FADV_DONTNEED)


def _bytes_needed(view: memoryview, offset: int, size: int, file_size: int) -> int:
    """How far into the file the record at `offset` reads: its header, and the payload its
    header's length claims (bounded by the file's size)."""
    need = offset + HEADER_SIZE
    if need <= size:
        (length, _, _) = HEADER.unpack_from(view, offset)
        need += length
    return min(need, file_size)


def _frame_at(view: memoryview, offset: int, size: int) -> tuple[Frame, bytes]:
    """read_frame at `offset` of a mapped segment's first `size` bytes, and the bytes it
    read: the record alone when it is whole and sound, else everything from `offset` to
    `size` (what the zero checks after a bad record or the end look at). The frame's
    offsets are the segment's."""
    body = offset + HEADER_SIZE
    if body <= size:
        (length, _, _) = HEADER.unpack_from(view, offset)
        if body + length <= size:
            record = bytes(view[offset : body + length])
            fr = read_frame(record, 0)
            if fr.status is FrameStatus.OK:
                return replace(fr, offset=offset, end=offset + fr.end), record
    rest = bytes(view[offset:size])
    fr = read_frame(rest, 0)
    return replace(fr, offset=offset, end=offset + fr.end), rest


def scan(directory: str, start: WalSnapshot | None = None) -> Scan:
    """Read every segment in `directory`; raise WALCorruptError on anything but a torn tail.

    `start` is the snapshot the caller restores from (None: the latest marker in
    the WAL). Pure reading: the caller repairs a torn tail.
    """
    names = list_segments(directory)
    if not names:
        raise WALNotFoundError(f"no wal segments in {directory}")
    for prev, cur in itertools.pairwise(names):
        if cur.seq != prev.seq + 1:
            path = os.path.join(directory, cur.filename)
            raise _corrupt(path, 0, f"segment seq {prev.seq + 1} is missing before {cur.seq}")

    metadata: bytes | None = None
    hard_state: HardState | None = None
    snapshot: WalSnapshot | None = None
    positioned: list[_Positioned] = []
    crc32 = zlib.crc32  # a local: the record loop runs once per record
    infos: list[SegmentInfo] = []
    torn: TornTail | None = None
    tail_offset = 0

    for number, name in enumerate(names):
        path = os.path.join(directory, name.filename)
        view, size = map_segment(path)
        file_size = len(view)
        is_last = number == len(names) - 1
        max_index = 0
        first_entry = 0
        offset = 0
        first = True
        while True:
            # The common case first: a whole, well-formed entry record whose header and
            # payload CRCs hold, read in place. Anything else (other record types, the end,
            # a torn or damaged record) goes to _frame_at below.
            body = offset + HEADER_SIZE
            if not first and body <= size:
                length, rtype, payload_crc, head_crc = _HEADER_AND_CRC.unpack_from(view, offset)
                end = body + length
                if end <= size and head_crc == crc32(view[offset : body - HEADER_CRC.size]):
                    payload = view[body:end]
                    if crc32(payload) == payload_crc:
                        if (
                            rtype == _ENTRY_RECORD
                            and length >= _ENTRY_HEAD
                            and payload[_ENTRY_TYPE_OFFSET] in _ENTRY_TYPES
                        ):
                            (index,) = _ENTRY_INDEX.unpack_from(payload, _ENTRY_INDEX_OFFSET)
                            positioned.append((index, payload, path, offset))
                            if index > max_index:
                                max_index = index
                            if not first_entry:
                                first_entry = index
                            offset = end
                            continue
                        if rtype == _HARD_STATE_RECORD and length == _HARD_STATE_SIZE:
                            # One per saved batch (~900 at 10k entries): as hot as entries.
                            hard_state = decode_hard_state(payload)
                            offset = end
                            continue
            need = _bytes_needed(view, offset, size, file_size)
            if need > size:
                # This record (or header) runs into the zero tail: what it reads there are
                # the zeros the file holds (a rare path).
                size = need
                continue
            fr, rest = _frame_at(view, offset, size)
            if fr.status is FrameStatus.END:
                if not all_zero(rest, 0):
                    bad = offset + _first_nonzero(rest, 0)
                    raise _corrupt(path, bad, f"data after a zero gap that starts at {offset}")
                break
            if fr.status is not FrameStatus.OK:
                if first:
                    raise _corrupt(path, offset, f"segment header unreadable ({fr.status.value})")
                if is_last and all_zero(rest, fr.end - offset):
                    torn = TornTail(path=path, offset=offset, end=fr.end)
                    log.warning(
                        "wal torn last record truncated file=%s offset=%d bytes=%d reason=%s",
                        path,
                        offset,
                        fr.end - offset,
                        fr.status.value,
                    )
                    break
                where = "an older segment" if not is_last else "valid data follows"
                raise _corrupt(path, offset, f"{fr.status.value} record ({where})")
            try:
                if first:
                    if fr.rtype != RecordType.SEGMENT:
                        raise PayloadError(f"first record has type {fr.rtype}, not SEGMENT")
                    head = decode_segment(fr.payload)
                    if (head.seq, head.first_index) != (name.seq, name.first_index):
                        raise PayloadError(
                            f"segment header says seq={head.seq} first_index={head.first_index}"
                        )
                    first = False
                elif fr.rtype == RecordType.ENTRY:
                    entry = decode_entry(fr.payload)
                    positioned.append((entry.index, memoryview(fr.payload), path, offset))
                    max_index = max(max_index, entry.index)
                    first_entry = first_entry or entry.index
                elif fr.rtype == RecordType.HARD_STATE:
                    hard_state = decode_hard_state(fr.payload)
                elif fr.rtype == RecordType.SNAPSHOT:
                    snapshot = decode_snapshot(fr.payload)
                elif fr.rtype == RecordType.METADATA:
                    if metadata is None:
                        metadata = fr.payload
                    elif metadata != fr.payload:
                        raise PayloadError("metadata differs from earlier segments")
                else:
                    raise PayloadError(f"unexpected record type {fr.rtype}")
            except PayloadError as err:
                raise _corrupt(path, offset, str(err)) from None
            offset = fr.end
        infos.append(
            SegmentInfo(name=name, path=path, max_index=max_index, first_entry=first_entry)
        )
        if is_last:
            tail_offset = offset
            forget_zero_tail(path, offset)

    if metadata is None:
        raise _corrupt(os.path.join(directory, names[0].filename), 0, "no metadata record")

    begin = start if start is not None else snapshot
    begin_index = begin.index if begin is not None else 0
    entries = _replay_entries(positioned, begin_index)
    last_index = entries[-1].index if entries else begin_index
    if snapshot is not None:
        last_index = max(last_index, snapshot.index)
    recovered = Recovered(
        metadata=metadata, hard_state=hard_state, snapshot=snapshot, entries=entries
    )
    return Scan(
        recovered=recovered,
        segments=infos,
        tail_offset=tail_offset,
        last_index=last_index,
        torn=torn,
    )


def _replay_entries(positioned: list[_Positioned], begin_index: int) -> list[Entry]:
    """Apply overwrite semantics and check contiguity from begin_index + 1."""
    kept: list[_Positioned] = []
    for item in positioned:
        index = item[0]
        if index <= begin_index:
            # Covered by the snapshot the caller restores from; but written after what
            # is kept, it replaced all of it (Raft §5.3), as it does in the log: a segment
            # cut at a snapshot repeats the log from the snapshot's index on.
            kept.clear()
            continue
        if kept and index <= kept[-1][0]:
            # Raft §5.3: a conflicting entry replaces it and everything after it.
            del kept[index - kept[0][0] :]
        expected = kept[-1][0] + 1 if kept else begin_index + 1
        if index != expected:
            raise _corrupt(
                item[2],
                item[3],
                f"entry index {index} leaves a gap: expected {expected} "
                f"(entries after snapshot index {begin_index} are missing)",
            )
        kept.append(item)
    entries: list[Entry] = []
    for _, payload, path, offset in kept:
        try:
            entries.append(decode_entry_lazily(payload))
        except PayloadError as err:
            raise _corrupt(path, offset, str(err)) from None
    return entries
