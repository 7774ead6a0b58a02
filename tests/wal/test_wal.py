"""WAL behaviour on a healthy disk: round trips, group commit, segments, overwrite."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from node.raft.messages import EntryType, HardState, SnapshotMetadata
from node.wal import (
    WAL,
    WALClosedError,
    WALExistsError,
    WALLockedError,
    WALNotFoundError,
    WalSnapshot,
)
from tests.wal.walutil import META, SMALL_SEGMENT, Recorder, entries, entry, hs


def test_round_trip_returns_metadata_hard_state_and_entries(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        wal.save(hs(0), entries(1, 3), must_sync=True)
        wal.save(hs(3, vote=2), [], must_sync=True)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    with wal:
        assert rec.metadata == META
        assert rec.hard_state == hs(3, vote=2)
        assert rec.snapshot is None
        assert rec.entries == entries(1, 3)


def test_entry_type_and_empty_data_survive(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    noop = entry(1)
    noop.data = b""
    conf = entry(2)
    conf.type = EntryType.EntryConfChange
    with WAL.create(wal_dir, META) as wal:
        wal.save(None, [noop, conf], must_sync=True)
    wal, rec = WAL.open(wal_dir)
    wal.close()
    assert rec.entries == [noop, conf]
    assert rec.hard_state is None


def test_save_is_one_write_and_one_fsync(tmp_path: Path) -> None:
    obs = Recorder()
    with WAL.create(str(tmp_path / "wal"), META, observer=obs) as wal:
        wal.save(hs(5), entries(1, 100), must_sync=True)
        assert len(obs.writes) == 1
        assert len(obs.fsyncs) == 1
        assert wal.fsyncs == 1
        assert wal.records_written == 101  # 100 entries + 1 hard state
        assert obs.writes[0][0] == wal.bytes_written


def test_must_sync_false_writes_without_fsync_and_close_flushes(tmp_path: Path) -> None:
    obs = Recorder()
    wal_dir = str(tmp_path / "wal")
    wal = WAL.create(wal_dir, META, observer=obs)
    wal.save(hs(1), [], must_sync=False)
    assert obs.fsyncs == []
    wal.save(None, [], must_sync=True)  # nothing new, but the earlier write is not durable yet
    assert len(obs.fsyncs) == 1
    wal.save(None, [], must_sync=True)  # nothing pending: no fsync
    assert len(obs.fsyncs) == 1
    wal.save(hs(1), [], must_sync=True)  # unchanged hard state is not rewritten
    assert len(obs.writes) == 1
    wal.close()
    with pytest.raises(WALClosedError):
        wal.save(hs(2), [], must_sync=True)


def test_segments_cut_when_full_and_reopen_after_many_saves(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        for i in range(1, 601):
            wal.save(hs(i - 1), [entry(i)], must_sync=(i % 7 == 0))
        assert wal.segment_count > 3
        assert wal.segments_cut == wal.segment_count - 1
    names = sorted(os.listdir(wal_dir))
    assert names[0] == "0000000000000000-0000000000000000.wal"
    # a sealed segment is trimmed to its data; no record spans two segments
    assert all(os.path.getsize(os.path.join(wal_dir, n)) <= SMALL_SEGMENT for n in names[:-1])
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    with wal:
        assert rec.entries == entries(1, 600)
        assert rec.hard_state == hs(599)
        wal.save(hs(600), entries(601, 650), must_sync=True)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    wal.close()
    assert rec.entries == entries(1, 650)
    assert rec.hard_state == hs(600)


def test_segment_names_carry_seq_and_first_index(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=4096) as wal:
        for i in range(1, 200, 10):
            wal.save(None, entries(i, i + 9), must_sync=True)
    names = sorted(os.listdir(wal_dir))
    for seq, name in enumerate(names):
        seq_hex, first_hex = name.removesuffix(".wal").split("-")
        assert int(seq_hex, 16) == seq
        if seq > 0:
            assert (int(first_hex, 16) - 1) % 10 == 0  # cut happens between saves


def test_batch_larger_than_a_segment_goes_whole_into_a_fresh_one(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=2048) as wal:
        wal.save(None, entries(1, 2), must_sync=True)
        wal.save(None, entries(3, 100), must_sync=True)  # ~15 KiB
        wal.save(None, entries(101, 101), must_sync=True)
    wal, rec = WAL.open(wal_dir, segment_size=2048)
    wal.close()
    assert rec.entries == entries(1, 101)


def test_new_entry_truncates_the_uncommitted_tail(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        wal.save(hs(3, term=1), entries(1, 10, term=1), must_sync=True)
        # a new leader at term 2 overwrites from index 6
        wal.save(hs(3, term=2), entries(6, 7, term=2), must_sync=True)
    wal, rec = WAL.open(wal_dir)
    wal.close()
    assert rec.entries == entries(1, 5, term=1) + entries(6, 7, term=2)
    assert rec.hard_state == hs(3, term=2)


def test_truncation_across_a_segment_cut(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=4096) as wal:
        for i in range(1, 81, 10):
            wal.save(None, entries(i, i + 9, term=1), must_sync=True)
        assert wal.segment_count >= 2
        wal.save(None, entries(3, 4, term=3), must_sync=True)
    wal, rec = WAL.open(wal_dir, segment_size=4096)
    wal.close()
    assert rec.entries == entries(1, 2, term=1) + entries(3, 4, term=3)


def test_open_from_snapshot_returns_only_later_entries(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META) as wal:
        wal.save(hs(20), entries(1, 30), must_sync=True)
        wal.save_snapshot(SnapshotMetadata(index=20, term=1))
    wal, rec = WAL.open(wal_dir)  # latest marker
    wal.close()
    assert rec.snapshot == WalSnapshot(index=20, term=1)
    assert rec.entries == entries(21, 30)
    wal, rec = WAL.open(wal_dir, snapshot=SnapshotMetadata(index=10, term=1))  # older snapshot file
    wal.close()
    assert rec.entries == entries(11, 30)


def test_commit_is_raised_to_the_start_snapshot(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META) as wal:
        wal.save(hs(2), entries(1, 3), must_sync=True)
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=50, term=2))  # snapshot from leader
    wal.close()
    assert rec.entries == []
    assert rec.hard_state == hs(50)


def test_follower_snapshot_install_then_entries_after_it(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META) as wal:
        wal.save(hs(5), entries(1, 5), must_sync=True)
        wal.save_snapshot(WalSnapshot(index=100, term=3))  # installed from the leader
        wal.save(hs(102, term=3), entries(101, 102, term=3), must_sync=True)
        assert wal.last_index == 102
    wal, rec = WAL.open(wal_dir)
    wal.close()
    assert rec.entries == entries(101, 102, term=3)


def test_create_refuses_existing_wal_and_open_refuses_missing(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    assert not WAL.exists(wal_dir)
    os.makedirs(wal_dir)
    with pytest.raises(WALNotFoundError):
        WAL.open(wal_dir)
    WAL.create(wal_dir, META).close()
    assert WAL.exists(wal_dir)
    with pytest.raises(WALExistsError):
        WAL.create(wal_dir, META)


def test_directory_lock_allows_one_writer(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META), pytest.raises(WALLockedError):
        WAL.open(wal_dir)
    wal, _ = WAL.open(wal_dir)  # released on close
    wal.close()


def test_concurrent_saves_from_threads_are_serialised(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        lock = threading.Lock()
        next_index = [1]

        def writer() -> None:
            for _ in range(50):
                with lock:  # index assignment and save in order, as the driver does
                    i = next_index[0]
                    next_index[0] += 1
                    wal.save(HardState(term=1, commit=i), [entry(i)], must_sync=True)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    wal.close()
    assert rec.entries == entries(1, 200)


def test_fsync_delay_shows_in_the_reported_fsync_duration(tmp_path: Path) -> None:
    obs = Recorder()
    with WAL.create(str(tmp_path / "wal"), META, observer=obs) as wal:
        wal.fsync_delay_seconds = 0.030
        wal.save(hs(1), [entry(1)], must_sync=True)
        wal.fsync_delay_seconds = 0.0
        wal.save(hs(2), [entry(2)], must_sync=True)
        with pytest.raises(ValueError, match=">= 0"):
            wal.fsync_delay_seconds = -1
    assert obs.fsyncs[0] >= 0.030
    assert wal.last_fsync_seconds == obs.fsyncs[-1]


def test_fsync_delay_can_be_set_from_another_thread_while_saving(tmp_path: Path) -> None:
    obs = Recorder()
    with WAL.create(str(tmp_path / "wal"), META, observer=obs) as wal:
        setter = threading.Thread(target=setattr, args=(wal, "fsync_delay_seconds", 0.03))
        setter.start()
        setter.join(timeout=10)
        wal.save(hs(1), [entry(1)], must_sync=True)
    assert obs.fsyncs[-1] >= 0.030
