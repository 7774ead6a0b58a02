"""The unstable tail of the log: entries (and maybe a snapshot) not yet durable in storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.raft.messages import Entry, Snapshot


class Unstable:
    """Entries and an incoming snapshot the driver has not yet confirmed as persisted.

    Index mapping: `entries[i]` has log position `i + offset`. `offset` may be smaller than the
    storage's last index + 1 after a conflict truncated the tail (Raft §5.3): the unstable
    entries then win. Entries below `offset_in_progress` were handed out in a `Ready` and are
    being written; `snapshot_in_progress` likewise for the snapshot.
    """

    __slots__ = ("entries", "offset", "offset_in_progress", "snapshot", "snapshot_in_progress")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset
        self.snapshot_in_progress = False
        self.offset_in_progress = offset

    def maybe_first_index(self) -> int | None:
        """First log index if a snapshot is pending (everything before it is gone)."""
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == i:
                return snap.metadata.term
            return None
        k = i - self.offset
        if k < len(self.entries):
            return self.entries[k].term
        if not self.entries and self.snapshot is not None and self.snapshot.metadata.index == i:
            return self.snapshot.metadata.term
        return None

    def next_entries(self) -> list[Entry]:
        """Entries not yet handed to the driver for persistence."""
        k = self.offset_in_progress - self.offset
        if k >= len(self.entries):
            return []
        return self.entries[k:]

    def next_snapshot(self) -> Snapshot | None:
        if self.snapshot is None or self.snapshot_in_progress:
            return None
        return self.snapshot

    def accept_in_progress(self) -> None:
        """Everything currently unstable was handed out in a Ready and is being written."""
        if self.entries:
            self.offset_in_progress = self.entries[-1].index + 1
        if self.snapshot is not None:
            self.snapshot_in_progress = True

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (`index`, `term`) are durable; drop them from the unstable tail.

        NB: if the entry at `index` was replaced by a later conflicting append while being
        written, its term differs and nothing is dropped: the new entry is still unstable.
        """
        if index < self.offset:
            return
        k = index - self.offset
        if k >= len(self.entries) or self.entries[k].term != term:
            return
        del self.entries[: k + 1]
        self.offset = index + 1
        if self.offset_in_progress < self.offset:
            self.offset_in_progress = self.offset

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None
            self.snapshot_in_progress = False

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log with `snap` (a follower installing a leader's snapshot)."""
        self.offset = snap.metadata.index + 1
        self.offset_in_progress = self.offset
        self.entries = []
        self.snapshot = snap
        self.snapshot_in_progress = False

    def truncate_and_append(self, ents: list[Entry]) -> None:
        """Append `ents`, first dropping any unstable entries at or after `ents[0].index`."""
        first = ents[0].index
        end = self.offset + len(self.entries)
        if first == end:
            self.entries.extend(ents)
        elif first <= self.offset:
            # The log is truncated back to (or before) the unstable offset: replace everything.
            self.entries = list(ents)
            self.offset = first
            self.offset_in_progress = first
        else:
            del self.entries[first - self.offset :]
            self.entries.extend(ents)
            if self.offset_in_progress > first:
                self.offset_in_progress = first

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Unstable entries [lo, hi); the caller guarantees offset <= lo <= hi <= last + 1."""
        return self.entries[lo - self.offset : hi - self.offset]
