"""A snapshot marker starts a segment that repeats the log from its entry on, so the
segments before it can go and a restart reads only what follows the snapshot."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from node.wal import WAL, WALCorruptError, WalSnapshot
from node.wal.record import HEADER_SIZE
from node.wal.recovery import data_end, read_to_zero_tail
from tests.wal.walutil import META, entries, hs

SEGMENT = 1024 * 1024


def _wal_files(wal_dir: str) -> list[str]:
    return sorted(n for n in os.listdir(wal_dir) if n.endswith(".wal"))


def _log_with_snapshot(wal_dir: str, *, release: bool) -> WAL:
    """Entries 1..60 in batches of 10 (commit 55), a snapshot at 50 (cut), entries 61..70."""
    wal = WAL.create(wal_dir, META, segment_size=SEGMENT)
    wal.snapshot_cut_bytes = 1  # every marker cuts
    for lo in range(1, 61, 10):
        wal.save(hs(min(lo + 9, 55)), entries(lo, lo + 9), must_sync=True)
    wal.save_snapshot(WalSnapshot(index=50, term=1))
    if release:
        wal.release_to(50)
    wal.save(hs(65), entries(61, 70), must_sync=True)
    return wal


def test_a_restart_after_a_snapshot_reads_only_the_segment_cut_at_it(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with _log_with_snapshot(wal_dir, release=True) as wal:
        assert wal.segments_cut == 1
        assert wal.segments_released == 1
        assert _wal_files(wal_dir) == [os.path.basename(wal.active_segment)]
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=50, term=1), segment_size=SEGMENT)
    with wal:
        assert wal.segment_count == 1
    # every acknowledged entry after the snapshot, and the state it was written with
    assert rec.entries == entries(51, 70)
    assert rec.hard_state == hs(65)
    assert rec.snapshot == WalSnapshot(index=50, term=1)
    assert rec.metadata == META


def test_a_crash_between_the_cut_and_the_release_replays_the_same_log(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with _log_with_snapshot(wal_dir, release=False) as wal:
        assert len(_wal_files(wal_dir)) == 2
    for start in (WalSnapshot(index=50, term=1), None):
        wal, rec = WAL.open(wal_dir, snapshot=start, segment_size=SEGMENT)
        wal.close()
        assert rec.entries == entries(51, 70)
        assert rec.hard_state == hs(65)


def test_appends_after_the_cut_keep_going_and_release_the_cut_segment_later(
    tmp_path: Path,
) -> None:
    wal_dir = str(tmp_path / "wal")
    with _log_with_snapshot(wal_dir, release=True) as wal:
        wal.save(hs(80), entries(71, 90), must_sync=True)
        wal.save_snapshot(WalSnapshot(index=80, term=1))
        assert wal.release_to(80) == 1
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=80, term=1), segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(81, 90)


def test_a_tail_rewritten_by_a_new_leader_is_what_the_cut_carries(tmp_path: Path) -> None:
    # 41..60 of term 1 were never committed; a leader of term 2 replaced them from 45 on.
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SEGMENT) as wal:
        wal.snapshot_cut_bytes = 1
        wal.save(hs(40), entries(1, 60), must_sync=True)
        wal.save(hs(48, term=2), entries(45, 52, term=2), must_sync=True)
        wal.save_snapshot(WalSnapshot(index=48, term=2))
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=48, term=2), segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(49, 52, term=2)


def test_entries_a_covered_entry_replaced_do_not_come_back(tmp_path: Path) -> None:
    # No cut here: the term-1 entries 51..60 precede, in the file, the term-2 entries that
    # replaced them from 45 on; a snapshot at 50 covers those, and 51..60 stay replaced.
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SEGMENT) as wal:
        wal.save(hs(40), entries(1, 60), must_sync=True)
        wal.save(hs(50, term=2), entries(45, 50, term=2), must_sync=True)
        wal.save_snapshot(WalSnapshot(index=50, term=2))
        assert wal.segments_cut == 0  # the segment is below snapshot_cut_bytes
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=50, term=2), segment_size=SEGMENT)
    wal.close()
    assert rec.entries == []
    assert rec.hard_state == hs(50, term=2)


def test_a_snapshot_beyond_the_log_is_a_marker_not_a_cut(tmp_path: Path) -> None:
    # A follower's snapshot from the leader: the log holds no entry at its index.
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SEGMENT) as wal:
        wal.snapshot_cut_bytes = 1
        wal.save(hs(10), entries(1, 10), must_sync=True)
        wal.save_snapshot(WalSnapshot(index=500, term=3))
        wal.save(hs(505, term=3), entries(501, 505, term=3), must_sync=True)
        assert wal.segments_cut == 0
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=500, term=3), segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(501, 505, term=3)


def test_damage_after_the_snapshot_in_the_cut_segment_is_still_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    with _log_with_snapshot(wal_dir, release=True) as wal:
        path, before = wal.active_segment, wal.tail_offset
        wal.save(None, entries(71, 71), must_sync=True)
        wal.save(hs(71), entries(72, 72), must_sync=True)
    with open(path, "r+b") as fh:  # a payload byte of entry 71, with records after it
        fh.seek(before + HEADER_SIZE + 20)
        byte = fh.read(1)[0]
        fh.seek(before + HEADER_SIZE + 20)
        fh.write(bytes([byte ^ 0x40]))
    with caplog.at_level(logging.ERROR, logger="node.wal"), pytest.raises(WALCorruptError) as info:
        WAL.open(wal_dir, snapshot=WalSnapshot(index=50, term=1), segment_size=SEGMENT)
    assert (info.value.path, info.value.offset) == (path, before)


def test_a_torn_last_record_after_the_cut_is_truncated_as_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    with _log_with_snapshot(wal_dir, release=True) as wal:
        path, before = wal.active_segment, wal.tail_offset
        wal.save(hs(71), entries(71, 71), must_sync=True)
        after = wal.tail_offset
    with open(path, "r+b") as fh:  # the last write reached the disk only in part
        fh.seek(before + (after - before) // 2)
        fh.write(bytes(after - before - (after - before) // 2))
    with caplog.at_level(logging.WARNING, logger="node.wal"):
        wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=50, term=1), segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(51, 70)
    assert "torn last record" in caplog.text


def test_the_zero_tail_past_the_filesystems_data_end_is_zero(tmp_path: Path) -> None:
    path = str(tmp_path / "segment")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, SEGMENT)  # preallocated, never written
        os.pwrite(fd, b"x" * 5000, 0)
        end = data_end(fd, SEGMENT)
        assert 5000 <= end <= SEGMENT
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        os.pwrite(fd, b"y", SEGMENT - 10)  # data past the preallocated middle
        assert data_end(fd, SEGMENT) == SEGMENT
    finally:
        os.close(fd)
    data, size = read_to_zero_tail(path)
    assert size == SEGMENT
    assert data[:5000] == b"x" * 5000
    assert data.endswith(b"y")  # read to its last non-zero byte: only zeros follow
    assert len(data) == SEGMENT - 9


def test_a_sparse_file_with_data_after_a_hole_is_read_to_that_data(tmp_path: Path) -> None:
    path = str(tmp_path / "segment")
    with open(path, "wb") as fh:
        fh.write(b"a" * 100)
        fh.truncate(SEGMENT)  # a hole after the first block
        fh.seek(SEGMENT // 2)
        fh.write(b"b")
    data, size = read_to_zero_tail(path)
    assert size == SEGMENT
    assert data[:100] == b"a" * 100
    assert data[SEGMENT // 2] == ord("b")
