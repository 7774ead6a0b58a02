"""Record framing and payload codecs: the WAL's on-disk format.

Every record is a 13-byte header followed by its payload:

    offset 0  u32 length        payload length in bytes
    offset 4  u8  type          RecordType (0 is never valid: zeros mean "no record")
    offset 5  u32 payload_crc   zlib.crc32 of the payload
    offset 9  u32 header_crc    zlib.crc32 of bytes 0..9 of this header

All integers are little-endian. The CRC is per record, not chained: each record
verifies on its own. The header carries its own CRC so a damaged length can
never be trusted: recovery knows exactly where a bad record ends when the
header is good, and knows not to trust anything but the header's position when
it is not. That is what lets it tell a torn tail (bad record, zeros after it)
from mid-log corruption (bad record, valid data after it).

Preallocated segments are zero-filled, and an all-zero header is read as "end
of records"; recovery then checks that nothing but zeros follows.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from node.raft.messages import Entry, EntryType, HardState

HEADER = struct.Struct("<IBI")  # length, type, payload_crc
HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + HEADER_CRC.size  # 13
ZERO_HEADER = bytes(HEADER_SIZE)

SEGMENT_MAGIC = b"RAFTMWAL"
FORMAT_VERSION = 1

_SEGMENT = struct.Struct("<8sHQQ")  # magic, version, seq, first_index
_ENTRY = struct.Struct("<QQB")  # term, index, entry type; data follows
_HARD_STATE = struct.Struct("<QQQ")  # term, vote, commit
_SNAPSHOT = struct.Struct("<QQ")  # index, term


class RecordType(enum.IntEnum):
    """What a record's payload holds. 0 is reserved: a zero header is not a record."""

    SEGMENT = 1  # first record of every segment: magic, format version, seq, first index
    METADATA = 2  # opaque bytes given at create (member id, cluster id); in every segment
    ENTRY = 3  # one Raft log entry
    HARD_STATE = 4  # term, vote, commit
    SNAPSHOT = 5  # marker: a snapshot at (index, term) exists; entries up to it may go


VALID_TYPES = frozenset(int(t) for t in RecordType)


@dataclass(frozen=True, slots=True)
class WalSnapshot:
    """A snapshot marker as the WAL stores it: the log position a snapshot covers."""

    index: int = 0
    term: int = 0


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """Identity of a segment file; must agree with its file name."""

    seq: int
    first_index: int
    version: int = FORMAT_VERSION


def frame(buf: bytearray, rtype: RecordType, payload: bytes) -> None:
    """Append one framed record to `buf` (the caller writes the whole batch at once)."""
    head = HEADER.pack(len(payload), rtype, zlib.crc32(payload))
    buf += head
    buf += HEADER_CRC.pack(zlib.crc32(head))
    buf += payload


def frame_entry(buf: bytearray, entry: Entry) -> None:
    """Append an ENTRY record: the hot path, so it packs header and payload in place."""
    payload = _ENTRY.pack(entry.term, entry.index, entry.type) + entry.data
    frame(buf, RecordType.ENTRY, payload)


def encode_hard_state(hs: HardState) -> bytes:
    return _HARD_STATE.pack(hs.term, hs.vote, hs.commit)


def encode_snapshot(snap: WalSnapshot) -> bytes:
    return _SNAPSHOT.pack(snap.index, snap.term)


def encode_segment(header: SegmentHeader) -> bytes:
    return _SEGMENT.pack(SEGMENT_MAGIC, header.version, header.seq, header.first_index)


class PayloadError(ValueError):
    """A payload whose CRC is right but whose content is not what its type promises."""


_ENTRY_TYPES = {int(t): t for t in EntryType}  # a dict lookup: EntryType(n) costs more


def _entry_head(payload: bytes | memoryview) -> tuple[int, int, EntryType]:
    """An ENTRY payload's term, index and type, checked."""
    if len(payload) < _ENTRY.size:
        raise PayloadError(f"entry payload too short ({len(payload)} bytes)")
    term, index, etype = _ENTRY.unpack_from(payload)
    kind = _ENTRY_TYPES.get(etype)
    if kind is None:
        raise PayloadError(f"unknown entry type {etype}")
    return term, index, kind


def decode_entry(payload: bytes | memoryview) -> Entry:
    """One ENTRY payload, its data copied out."""
    term, index, kind = _entry_head(payload)
    return Entry(term, index, kind, bytes(payload[_ENTRY.size :]))


# The slot `Entry.data` is stored in: a LazyEntry keeps its copied data there.
_DATA_SLOT = Entry.__dict__["data"]


class LazyEntry(Entry):
    """An entry replayed from a mapped WAL segment: its data is copied out of the mapping
    the first time it is read.

    A restarted member replays every entry since its snapshot, and most are never read
    again: they are applied, and every follower has them. Copying each one's data out
    at replay (10 MB at 10k entries of 1 KiB) put ~2,900 fresh pages under the start,
    ~13 ms of CPU per member on this VM, where three members restarted together share
    two cores. It equals an `Entry` with the same fields.
    """

    __slots__ = ("_payload",)

    def __init__(self, term: int, index: int, kind: EntryType, payload: memoryview) -> None:
        self.term = term
        self.index = index
        self.type = kind
        self._payload: memoryview | None = payload

    @property
    def data(self) -> bytes:
        payload = self._payload
        if payload is None:
            value: bytes = _DATA_SLOT.__get__(self, LazyEntry)
            return value
        value = bytes(payload[_ENTRY.size :])
        _DATA_SLOT.__set__(self, value)
        self._payload = None  # the mapping may go once no entry needs it
        return value

    @data.setter
    def data(self, value: bytes) -> None:
        _DATA_SLOT.__set__(self, value)
        self._payload = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        mine = (self.term, self.index, self.type, self.data)
        return mine == (other.term, other.index, other.type, other.data)

    __hash__ = None  # type: ignore[assignment]  # as Entry's: mutable, so unhashable


def decode_entry_lazily(payload: memoryview) -> Entry:
    """One ENTRY payload of a mapped segment (run for every kept entry when a member
    restarts), its data left in place (LazyEntry)."""
    term, index, kind = _entry_head(payload)
    return LazyEntry(term, index, kind, payload)


def decode_hard_state(payload: bytes | memoryview) -> HardState:
    if len(payload) != _HARD_STATE.size:
        raise PayloadError(f"hard state payload has {len(payload)} bytes")
    term, vote, commit = _HARD_STATE.unpack(payload)
    return HardState(term=term, vote=vote, commit=commit)


def decode_snapshot(payload: bytes) -> WalSnapshot:
    if len(payload) != _SNAPSHOT.size:
        raise PayloadError(f"snapshot payload has {len(payload)} bytes")
    index, term = _SNAPSHOT.unpack(payload)
    return WalSnapshot(index=index, term=term)


def decode_segment(payload: bytes) -> SegmentHeader:
    if len(payload) != _SEGMENT.size:
        raise PayloadError(f"segment header payload has {len(payload)} bytes")
    magic, version, seq, first_index = _SEGMENT.unpack(payload)
    if magic != SEGMENT_MAGIC:
        raise PayloadError(f"bad segment magic {magic!r}")
    if version != FORMAT_VERSION:
        raise PayloadError(f"unsupported wal format version {version}")
    return SegmentHeader(seq=seq, first_index=first_index, version=version)


class FrameStatus(enum.Enum):
    """What `read_frame` found at an offset."""

    OK = "ok"
    END = "end"  # zero header or end of file: no record starts here
    BAD_HEADER = "bad-header"  # header CRC mismatch, unknown type, or a partial header
    SHORT = "short"  # header fine, payload runs past the end of the file
    BAD_PAYLOAD = "bad-payload"  # header fine, payload CRC mismatch


@dataclass(frozen=True, slots=True)
class Frame:
    """One read attempt. `end` is where the record ends if its header can be trusted."""

    status: FrameStatus
    offset: int
    rtype: int = 0
    payload: bytes = b""
    end: int = 0


def read_frame(data: bytes, offset: int) -> Frame:
    """Decode the record starting at `offset` in a segment's bytes, classifying failures."""
    size = len(data)
    if offset >= size:
        return Frame(FrameStatus.END, offset, end=offset)
    if offset + HEADER_SIZE > size:
        if data.count(0, offset) == size - offset:
            return Frame(FrameStatus.END, offset, end=offset)
        return Frame(FrameStatus.BAD_HEADER, offset, end=size)
    head_end = offset + HEADER.size
    if data.count(0, offset, offset + HEADER_SIZE) == HEADER_SIZE:
        return Frame(FrameStatus.END, offset, end=offset)
    (head_crc,) = HEADER_CRC.unpack_from(data, head_end)
    if zlib.crc32(data[offset:head_end]) != head_crc:
        return Frame(FrameStatus.BAD_HEADER, offset, end=offset + HEADER_SIZE)
    length, rtype, payload_crc = HEADER.unpack_from(data, offset)
    if rtype not in VALID_TYPES:
        return Frame(FrameStatus.BAD_HEADER, offset, rtype=rtype, end=offset + HEADER_SIZE)
    start = offset + HEADER_SIZE
    end = start + length
    if end > size:
        return Frame(FrameStatus.SHORT, offset, rtype=rtype, end=size)
    payload = data[start:end]
    if zlib.crc32(payload) != payload_crc:
        return Frame(FrameStatus.BAD_PAYLOAD, offset, rtype=rtype, end=end)
    return Frame(FrameStatus.OK, offset, rtype=rtype, payload=payload, end=end)
