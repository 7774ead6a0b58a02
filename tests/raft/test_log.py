"""RaftLog and Unstable: appends, conflicts, terms, compaction, commit and apply cursors."""

from __future__ import annotations

import pytest

from node.raft import CompactedError, Entry, MemoryStorage, Snapshot, SnapshotMetadata
from node.raft.log import RaftLog
from node.raft.log_unstable import Unstable
from node.raft.logger import DiscardLogger


def ents(*pairs: tuple[int, int]) -> list[Entry]:
    return [Entry(term=t, index=i) for i, t in pairs]


def new_log(*pairs: tuple[int, int]) -> RaftLog:
    st = MemoryStorage()
    st.append(ents(*pairs))
    return RaftLog(st, DiscardLogger())


def test_maybe_append_matches_then_truncates_conflicting_suffix() -> None:
    log = new_log((1, 1), (2, 2), (3, 2))
    last, ok = log.maybe_append(1, 1, 0, ents((2, 3), (3, 3)))
    assert (last, ok) == (3, True)
    assert [(e.index, e.term) for e in log.all_entries()] == [(1, 1), (2, 3), (3, 3)]


def test_maybe_append_rejects_mismatching_previous_entry() -> None:
    log = new_log((1, 1), (2, 2))
    assert log.maybe_append(2, 1, 0, ents((3, 2))) == (0, False)
    assert log.maybe_append(5, 2, 0, ents((6, 2))) == (0, False)


def test_maybe_append_commits_at_most_the_new_entries() -> None:
    log = new_log((1, 1))
    log.maybe_append(1, 1, 10, ents((2, 1)))
    assert log.committed == 2


def test_conflict_with_committed_entry_is_fatal() -> None:
    log = new_log((1, 1), (2, 1))
    log.commit_to(2)
    with pytest.raises(AssertionError):
        log.maybe_append(1, 1, 2, ents((2, 2)))


def test_find_conflict_by_term_skips_whole_terms() -> None:
    log = new_log((1, 1), (2, 1), (3, 3), (4, 3), (5, 4))
    assert log.find_conflict_by_term(5, 2) == (2, 1)
    assert log.find_conflict_by_term(5, 4) == (5, 4)
    assert log.find_conflict_by_term(4, 3) == (4, 3)


def test_is_up_to_date_compares_term_then_index() -> None:
    log = new_log((1, 1), (2, 2))
    assert log.is_up_to_date(1, 3)
    assert log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(1, 2)
    assert not log.is_up_to_date(10, 1)


def test_maybe_commit_only_current_term() -> None:
    log = new_log((1, 1), (2, 2))
    assert not log.maybe_commit(2, 3)  # §5.4.2: entry 2 is of an older term
    assert log.maybe_commit(2, 2)
    assert log.committed == 2


def test_terms_after_compaction() -> None:
    st = MemoryStorage()
    st.append(ents((1, 1), (2, 1), (3, 2), (4, 2)))
    st.create_snapshot(3, st.snapshot().metadata.conf_state, b"")
    st.compact(3)
    log = RaftLog(st, DiscardLogger())
    assert log.first_index() == 4
    assert log.term(3) == 2  # the compaction point's term stays available
    with pytest.raises(CompactedError):
        log.term(2)
    with pytest.raises(CompactedError):
        log.slice(2, 4)


def test_committed_entries_and_apply_cursor() -> None:
    log = new_log((1, 1), (2, 1), (3, 1))
    log.commit_to(2)
    assert [e.index for e in log.next_committed_ents()] == [1, 2]
    log.accept_applying(2)
    assert log.next_committed_ents() == []
    log.applied_to(2)
    log.commit_to(3)
    assert [e.index for e in log.next_committed_ents()] == [3]


def test_slice_respects_size_but_returns_at_least_one() -> None:
    st = MemoryStorage()
    st.append([Entry(term=1, index=i, data=b"x" * 100) for i in range(1, 4)])
    log = RaftLog(st, DiscardLogger())
    log.append([Entry(term=1, index=i, data=b"y" * 100) for i in range(4, 7)])
    assert len(log.entries(1, 1)) == 1
    assert len(log.entries(1, 250)) == 2
    assert len(log.entries(2, 400)) == 3
    assert [e.index for e in log.entries(2)] == [2, 3, 4, 5, 6]


def test_unstable_truncate_and_append_and_stable_to() -> None:
    u = Unstable(5)
    u.truncate_and_append(ents((5, 1), (6, 1), (7, 1)))
    assert u.next_entries()[0].index == 5
    u.accept_in_progress()
    assert u.next_entries() == []
    u.truncate_and_append(ents((6, 2)))  # conflict: replaces 6 and 7, and 6 is no longer sent
    assert [(e.index, e.term) for e in u.entries] == [(5, 1), (6, 2)]
    assert [e.index for e in u.next_entries()] == [6]
    u.stable_to(7, 1)  # the replaced entry's persistence must not drop anything
    assert len(u.entries) == 2
    u.stable_to(5, 1)
    assert u.offset == 6
    assert [(e.index, e.term) for e in u.entries] == [(6, 2)]


def test_unstable_snapshot_restore() -> None:
    u = Unstable(3)
    u.truncate_and_append(ents((3, 1)))
    snap = Snapshot(metadata=SnapshotMetadata(index=10, term=2))
    u.restore(snap)
    assert u.maybe_first_index() == 11
    assert u.maybe_last_index() == 10
    assert u.maybe_term(10) == 2
    assert u.next_snapshot() is snap
    u.accept_in_progress()
    assert u.next_snapshot() is None
    u.stable_snap_to(10)
    assert u.snapshot is None


def test_memory_storage_append_truncates_and_rejects_gaps() -> None:
    st = MemoryStorage()
    st.append(ents((1, 1), (2, 1), (3, 1)))
    st.append(ents((2, 2)))
    assert st.last_index() == 2
    assert st.term(2) == 2
    with pytest.raises(Exception, match="missing log entry"):
        st.append(ents((5, 2)))
