"""The stable log the core reads: the `Storage` Protocol and the in-memory `MemoryStorage`.

The core only reads storage. The driver writes it after the WAL made the data durable:
`apply_snapshot`, `set_hard_state` and `append` at boot and after every persisted `Ready`,
`create_snapshot` / `compact` for log compaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from node.raft.errors import CompactedError, SnapOutOfDateError, UnavailableError
from node.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

NO_LIMIT = 1 << 63
"""A `max_size` that never limits (etcd's math.MaxUint64)."""

ENTRY_OVERHEAD = 16
"""Bytes counted per entry on top of its data when sizing messages (a proto header's worth)."""


def entry_size(e: Entry) -> int:
    return len(e.data) + ENTRY_OVERHEAD


def limit_size(ents: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of `ents` within `max_size` bytes, but never less than one entry."""
    if len(ents) <= 1 or max_size >= NO_LIMIT:
        return ents
    size = len(ents[0].data) + ENTRY_OVERHEAD
    for i in range(1, len(ents)):
        size += len(ents[i].data) + ENTRY_OVERHEAD
        if size > max_size:
            return ents[:i]
    return ents


class Storage(Protocol):
    """Read access to the stable (persisted) log; errors are `CompactedError`/`UnavailableError`."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...
    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]: ...  # [lo, hi)
    def term(self, i: int) -> int: ...
    def first_index(self) -> int: ...
    def last_index(self) -> int: ...
    def snapshot(self) -> Snapshot: ...


class MemoryStorage:
    """A `Storage` held in memory, filled by the driver from the WAL.

    Invariant: `_ents[0]` is a dummy entry at the snapshot position (its index and term are the
    last compacted entry's), so `_ents[i]` has log position `i + _ents[0].index`.
    """

    __slots__ = ("_ents", "_hard_state", "_snapshot")

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # -- Storage ---------------------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} is compacted (first index {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries [{lo}, {hi}) beyond last index {self.last_index()}")
        ents = self._ents[lo - offset : hi - offset]
        return limit_size(ents, max_size)

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise CompactedError(f"index {i} is compacted (first index {offset + 1})")
        if i - offset >= len(self._ents):
            raise UnavailableError(f"index {i} beyond last index {self.last_index()}")
        return self._ents[i - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- written by the driver -------------------------------------------------------------
    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace everything with `snap` (a follower installing the leader's snapshot)."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            raise SnapOutOfDateError(
                f"snapshot at {snap.metadata.index} is not newer than "
                f"{self._snapshot.metadata.index}"
            )
        self._snapshot = snap
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a state machine image at applied `index`; `compact` may then drop the log."""
        if index <= self._snapshot.metadata.index:
            raise SnapOutOfDateError(
                f"snapshot at {index} is not newer than {self._snapshot.metadata.index}"
            )
        offset = self._ents[0].index
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} beyond last index {self.last_index()}")
        term = self._ents[index - offset].term
        meta = SnapshotMetadata(index=index, term=term, conf_state=conf_state)
        self._snapshot = Snapshot(metadata=meta, data=data)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Drop entries before `compact_index` (it becomes the dummy entry)."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise CompactedError(f"index {compact_index} is already compacted")
        if compact_index > self.last_index():
            raise UnavailableError(f"compact {compact_index} beyond last index {self.last_index()}")
        i = compact_index - offset
        self._ents = [Entry(term=self._ents[i].term, index=compact_index), *self._ents[i + 1 :]]

    def append(self, entries: list[Entry]) -> None:
        """Append persisted entries, truncating any conflicting suffix (Raft §5.3)."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # everything is already compacted
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        n = len(self._ents)
        if n > offset:
            del self._ents[offset:]
            self._ents.extend(entries)
        elif n == offset:
            self._ents.extend(entries)
        else:
            raise UnavailableError(
                f"missing log entry [last: {self.last_index()}, append at: {entries[0].index}]"
            )


if TYPE_CHECKING:
    _: Storage = MemoryStorage()
