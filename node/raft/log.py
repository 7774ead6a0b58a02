"""`RaftLog`: the stable log in `Storage` plus the `Unstable` tail, with commit/apply cursors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.raft.errors import CompactedError, SnapshotTemporarilyUnavailable, UnavailableError
from node.raft.log_unstable import Unstable
from node.raft.storage import NO_LIMIT, limit_size

if TYPE_CHECKING:
    from node.raft.logger import RaftLogger
    from node.raft.messages import Entry, Snapshot
    from node.raft.storage import Storage


class RaftLog:
    """The replicated log as the core sees it.

    Invariant: applied <= applying <= committed. Entries in (applying, committed] are handed out
    as committed entries by the next Ready; (applied, applying] are being applied by the driver.
    Invariant: committed never decreases, and committed entries are never truncated (§5.4).
    """

    __slots__ = ("applied", "applying", "committed", "logger", "storage", "unstable")

    def __init__(self, storage: Storage, logger: RaftLogger) -> None:
        self.storage = storage
        self.logger = logger
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot (first - 1) is committed and applied by construction.
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1

    def __repr__(self) -> str:
        return (
            f"committed={self.committed}, applied={self.applied}, applying={self.applying}, "
            f"unstable.offset={self.unstable.offset}, "
            f"unstable.offset_in_progress={self.unstable.offset_in_progress}, "
            f"len(unstable.entries)={len(self.unstable.entries)}"
        )

    # -- positions -------------------------------------------------------------------------
    def first_index(self) -> int:
        snap = self.unstable.snapshot
        return snap.metadata.index + 1 if snap is not None else self.storage.first_index()

    def last_index(self) -> int:
        u = self.unstable
        if u.entries:
            return u.offset + len(u.entries) - 1
        snap = u.snapshot
        return snap.metadata.index if snap is not None else self.storage.last_index()

    def term(self, i: int) -> int:
        """Term of entry `i`; raises `CompactedError`/`UnavailableError` outside [first-1, last].

        The term of first-1 (the snapshot's last entry) stays available for append matching.
        """
        u = self.unstable
        k = i - u.offset
        if 0 <= k < len(u.entries):
            return u.entries[k].term  # the common case on a put's path: a new entry
        if k < 0 and u.snapshot is None:
            # Before the unstable tail, which stays within storage's last + 1: storage
            # answers, raising the same errors as below for an index it does not hold.
            return self.storage.term(i)
        t = u.maybe_term(i)
        if t is not None:
            return t
        if i + 1 < self.first_index():
            raise CompactedError(f"index {i} is compacted")
        if i > self.last_index():
            raise UnavailableError(f"index {i} beyond last index {self.last_index()}")
        return self.storage.term(i)

    def zero_term_on_err(self, i: int) -> int:
        try:
            return self.term(i)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, term: int) -> bool:
        try:
            return self.term(i) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Raft §5.4.1: a candidate's log is at least as up-to-date as ours (term, then index)."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and lasti >= self.last_index())

    # -- appending -------------------------------------------------------------------------
    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: list[Entry]
    ) -> tuple[int, bool]:
        """Follower side of AppendEntries: append `ents` after (index, log_term) if it matches.

        Returns (last index of the new entries, True) or (0, False) when the log does not
        contain an entry at `index` with `log_term` (Raft §5.3 consistency check).
        """
        if not self.match_term(index, log_term):
            return 0, False
        last_new = index + len(ents)
        if index == self.last_index():
            # The common case: the entries follow our last one, which matches; none of them
            # can conflict, and index >= committed (committed <= last).
            if ents:
                self.unstable.truncate_and_append(ents)
            self.commit_to(min(committed, last_new))
            return last_new, True
        ci = self.find_conflict(ents)
        if ci != 0:
            if ci <= self.committed:
                raise AssertionError(
                    f"entry {ci} conflicts with committed entry [committed({self.committed})]"
                )
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new, True

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise AssertionError(f"after({after}) is out of range [committed({self.committed})]")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: list[Entry]) -> int:
        """Index of the first entry of `ents` that is new or conflicts (0 if none).

        An existing entry with a different term is a conflict: it and all that follow it are
        truncated (Raft §5.3). Entries beyond our last index are simply new.
        """
        last = self.last_index()
        for e in ents:
            if e.index > last:
                return e.index
            if not self.match_term(e.index, e.term):
                if e.index <= last:
                    self.logger.info(
                        f"found conflict at index {e.index} [existing term: "
                        f"{self.zero_term_on_err(e.index)}, conflicting term: {e.term}]"
                    )
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term, for fast backtracking.

        Any entry after it cannot match the leader's log at `index`, so the leader may skip
        straight there. Returns (index, 0) when terms are unknown (compacted).
        """
        while index > 0:
            try:
                our = self.term(index)
            except (CompactedError, UnavailableError):
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    # -- reading ---------------------------------------------------------------------------
    def entries(self, i: int, max_size: int = NO_LIMIT) -> list[Entry]:
        last = self.last_index()
        if i > last:
            return []
        u = self.unstable
        if i >= u.offset:
            # All unstable (a leader's fresh proposals): `slice` without its bound checks,
            # which hold here (offset >= first index, last + 1 == offset + len(entries)).
            return limit_size(u.entries[i - u.offset :], max_size)
        return self.slice(i, last + 1, max_size)

    def all_entries(self) -> list[Entry]:
        return self.entries(self.first_index())

    def slice(self, lo: int, hi: int, max_size: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi) within `max_size` bytes (at least one), from storage then unstable."""
        if lo > hi:
            raise AssertionError(f"invalid slice {lo} > {hi}")
        fi = self.first_index()
        if lo < fi:
            raise CompactedError(f"index {lo} is compacted (first index {fi})")
        if hi > self.last_index() + 1:
            raise AssertionError(f"slice[{lo},{hi}) out of bound [{fi},{self.last_index()}]")
        if lo == hi:
            return []
        off = self.unstable.offset
        if lo >= off:
            return limit_size(self.unstable.slice(lo, hi), max_size)
        ents = self.storage.entries(lo, min(hi, off), max_size)
        if hi <= off or len(ents) < min(hi, off) - lo:
            return ents  # the size limit (or a short read) stopped in the stable part
        tail = self.unstable.slice(off, hi)
        return limit_size(ents + tail, max_size) if tail else ents

    def snapshot(self) -> Snapshot:
        snap = self.unstable.snapshot
        if snap is not None:
            return snap
        snap = self.storage.snapshot()
        if snap.is_empty():
            raise SnapshotTemporarilyUnavailable("no snapshot in storage")
        return snap

    # -- commit / apply --------------------------------------------------------------------
    def commit_to(self, to_commit: int) -> None:
        """Advance the commit index (never backwards)."""
        if to_commit > self.committed:
            if self.last_index() < to_commit:
                raise AssertionError(
                    f"to_commit({to_commit}) is out of range [last_index({self.last_index()})]"
                )
            self.committed = to_commit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Leader: commit `max_index` if it holds an entry of the current `term`.

        Raft §5.4.2: only entries from the leader's current term are committed by counting
        replicas; earlier entries are committed indirectly by the Log Matching Property.
        """
        if max_index > self.committed and self.zero_term_on_err(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise AssertionError(
                f"applied({i}) is out of range [prev_applied({self.applied}), "
                f"committed({self.committed})]"
            )
        self.applied = i
        if self.applying < i:
            self.applying = i

    def has_next_committed_ents(self) -> bool:
        if self.unstable.snapshot is not None:
            return False  # the snapshot must be installed before anything after it is applied
        return self.committed > self.applying

    def next_committed_ents(self) -> list[Entry]:
        """Committed entries not yet handed out for applying.

        NB: they may still be in the unstable tail: the driver persists a Ready's entries before
        applying its committed entries (persist -> send -> apply -> advance).
        """
        if not self.has_next_committed_ents():
            return []
        lo, hi = self.applying + 1, self.committed + 1
        off = self.unstable.offset
        # Within [first index, last index] by the invariants: one side of the tail or the
        # other needs none of `slice`'s checks (a put's entries commit once durable).
        if hi <= off:
            return self.storage.entries(lo, hi, NO_LIMIT)
        if lo >= off:
            return self.unstable.slice(lo, hi)
        return self.slice(lo, hi)

    def accept_applying(self, i: int) -> None:
        self.applying = i

    # -- persistence acknowledgements ------------------------------------------------------
    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)

    def restore(self, snap: Snapshot) -> None:
        """Replace the log with `snap`; everything it covers is committed."""
        self.logger.info(
            f"log [{self!r}] starts to restore snapshot "
            f"[index: {snap.metadata.index}, term: {snap.metadata.term}]"
        )
        self.committed = snap.metadata.index
        self.unstable.restore(snap)
