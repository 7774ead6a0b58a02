"""Recovery: a torn last record is truncated with a warning; earlier damage is corruption."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path

import pytest

from node.wal import WAL, WALCorruptError, WalSnapshot
from node.wal.record import HEADER_SIZE
from tests.wal.walutil import META, SMALL_SEGMENT, entries, entry, hs

SEED = 20240611


def _write_log(wal_dir: str, n: int = 20) -> tuple[int, int, str]:
    """n single-entry saves; returns (start, end) offsets of the last record and its file."""
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        wal.save(hs(0), [], must_sync=True)
        for i in range(1, n):
            wal.save(None, [entry(i)], must_sync=True)
        start = wal.tail_offset
        wal.save(None, [entry(n)], must_sync=True)
        return start, wal.tail_offset, wal.active_segment


def _zero(path: str, lo: int, hi: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(lo)
        fh.write(bytes(hi - lo))


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0x40]))


def test_torn_tail_at_random_offsets_recovers_everything_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED)
    pristine = str(tmp_path / "pristine")
    start, end, active = _write_log(pristine)
    name = os.path.basename(active)
    cuts = sorted({start + 1, end - 1, *(rng.randrange(start + 1, end) for _ in range(10))})
    for cut in cuts:
        for style in ("zeros", "eof"):
            wal_dir = str(tmp_path / f"torn-{cut}-{style}")
            shutil.copytree(pristine, wal_dir)
            path = os.path.join(wal_dir, name)
            if style == "zeros":  # preallocated file: the unwritten rest reads as zeros
                _zero(path, cut, end)
            else:  # the write stopped at end of file
                os.truncate(path, cut)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="node.wal"):
                wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
            with wal:
                assert rec.entries == entries(1, 19), f"cut={cut} style={style}"
                warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
                assert len(warnings) == 1
                assert path in warnings[0].getMessage()
                assert f"offset={start}" in warnings[0].getMessage()
                # appending after the repair leaves a clean log
                wal.save(hs(20), [entry(20, term=2)], must_sync=True)
            wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
            wal.close()
            assert rec.entries == [*entries(1, 19), entry(20, term=2)]


def test_torn_multi_record_batch_keeps_its_complete_prefix(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        wal.save(None, entries(1, 5), must_sync=True)
        start = wal.tail_offset
        wal.save(hs(9), entries(6, 9), must_sync=True)
        end, path = wal.tail_offset, wal.active_segment
    _zero(path, (start + end) // 2, end)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    wal.close()
    assert rec.entries == entries(1, len(rec.entries))
    assert 5 <= len(rec.entries) < 9
    assert rec.hard_state is None  # the hard state was the batch's last record


def _expect_corrupt(
    wal_dir: str, path: str, offset: int, caplog: pytest.LogCaptureFixture
) -> WALCorruptError:
    with caplog.at_level(logging.ERROR, logger="node.wal"), pytest.raises(WALCorruptError) as info:
        WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    err = info.value
    assert err.path == path
    assert err.offset == offset
    assert path in str(err)
    assert f"offset={offset}" in str(err)
    assert any(r.levelno == logging.ERROR and path in r.getMessage() for r in caplog.records)
    return err


def _record_offsets(wal_dir: str) -> tuple[list[int], str]:
    """Start offsets of the entry records 1..5 (each its own save)."""
    offsets = []
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        for i in range(1, 6):
            offsets.append(wal.tail_offset)
            wal.save(None, [entry(i)], must_sync=True)
        wal.save(hs(5), [], must_sync=True)
        return offsets, wal.active_segment


def test_flipped_payload_byte_in_an_early_record_is_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    offsets, path = _record_offsets(wal_dir)
    _flip(path, offsets[1] + HEADER_SIZE + 20)
    _expect_corrupt(wal_dir, path, offsets[1], caplog)


def test_flipped_header_byte_in_an_early_record_is_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    offsets, path = _record_offsets(wal_dir)
    _flip(path, offsets[2] + 1)  # the length field: must not be trusted
    _expect_corrupt(wal_dir, path, offsets[2], caplog)


def test_zeroed_record_followed_by_data_is_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    offsets, path = _record_offsets(wal_dir)
    _zero(path, offsets[1], offsets[2])
    _expect_corrupt(wal_dir, path, offsets[2], caplog)  # names where the data resumes


def test_damage_in_an_older_segment_is_corruption_even_at_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=4096) as wal:
        for i in range(1, 101):
            wal.save(None, [entry(i)], must_sync=True)
        first = wal.segment_paths[0]
        assert wal.segment_count >= 2
    size = os.path.getsize(first)  # sealed segments are trimmed: the last record ends here
    _flip(first, size - 1)
    with caplog.at_level(logging.ERROR, logger="node.wal"), pytest.raises(WALCorruptError) as info:
        WAL.open(wal_dir, segment_size=4096)
    assert info.value.path == first


def test_missing_middle_segment_is_corruption(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=4096) as wal:
        for i in range(1, 201):
            wal.save(None, [entry(i)], must_sync=True)
        paths = wal.segment_paths
    assert len(paths) >= 3
    os.unlink(paths[1])
    with pytest.raises(WALCorruptError, match="missing"):
        WAL.open(wal_dir, segment_size=4096)


def test_gap_after_the_start_snapshot_is_refused(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META) as wal:
        wal.save(hs(5), entries(1, 5), must_sync=True)
        wal.save_snapshot(WalSnapshot(100, 3))
        wal.save(None, entries(101, 102, term=3), must_sync=True)
    # restoring from an older snapshot cannot work: entries 6..100 exist only in snapshot 100
    with pytest.raises(WALCorruptError, match="gap"):
        WAL.open(wal_dir, snapshot=WalSnapshot(3, 1))


def test_unfinished_segment_file_from_a_crashed_cut_is_removed(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META) as wal:
        wal.save(None, entries(1, 3), must_sync=True)
    leftover = os.path.join(wal_dir, "0000000000000001-0000000000000004.wal.tmp")
    with open(leftover, "wb") as fh:
        fh.write(b"partial")
    wal, rec = WAL.open(wal_dir)
    wal.close()
    assert not os.path.exists(leftover)
    assert rec.entries == entries(1, 3)


def test_replay_after_a_snapshot_keeps_exactly_the_entries_after_it(tmp_path: Path) -> None:
    # Entries a snapshot covers are checked but not decoded; what is kept must be what a
    # full decode keeps, including a conflicting tail a new leader rewrote after it.
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META) as wal:
        wal.save(hs(40), entries(1, 40), must_sync=True)
        wal.save_snapshot(WalSnapshot(30, 1))
        wal.save(None, entries(41, 45), must_sync=True)
        wal.save(hs(43, term=2), entries(43, 44, term=2), must_sync=True)  # replaces 43..45
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(30, 1))
    wal.close()
    assert rec.entries == entries(31, 42) + entries(43, 44, term=2)
    assert rec.hard_state == hs(43, term=2)


def test_flipped_byte_in_an_entry_the_snapshot_covers_is_still_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    offsets, path = _record_offsets(wal_dir)
    _flip(path, offsets[1] + HEADER_SIZE + 20)  # entry 2, below the start snapshot at 4
    with caplog.at_level(logging.ERROR, logger="node.wal"), pytest.raises(WALCorruptError) as info:
        WAL.open(wal_dir, snapshot=WalSnapshot(4, 1))
    assert (info.value.path, info.value.offset) == (path, offsets[1])
