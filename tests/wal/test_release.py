"""Disk stays bounded: snapshot marker + release_to each interval leaves a few segments."""

from __future__ import annotations

import os
from pathlib import Path

from node.raft.messages import ConfState, SnapshotMetadata
from node.wal import WAL, Snapshotter, WalSnapshot
from tests.wal.walutil import META, Recorder, entries, hs

SEGMENT = 4096
INTERVAL = 100  # the "snapshot count" of this test
BATCH = 10


def _wal_files(wal_dir: str) -> list[str]:
    return sorted(n for n in os.listdir(wal_dir) if n.endswith(".wal"))


def test_release_each_snapshot_interval_keeps_disk_bounded(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "member" / "wal")
    snapper = Snapshotter(str(tmp_path / "member" / "snap"))
    most_files = 0
    with WAL.create(wal_dir, META, segment_size=SEGMENT) as wal:
        index = 0
        for _ in range(10 * INTERVAL // BATCH):
            wal.save(hs(index + BATCH), entries(index + 1, index + BATCH), must_sync=True)
            index += BATCH
            if index % INTERVAL == 0:
                meta = SnapshotMetadata(index=index, term=1, conf_state=ConfState(voters=(1,)))
                snapper.save(meta, f"image at {index}".encode())
                wal.save_snapshot(meta)
                wal.release_to(index)
                snapper.purge(keep=2)
            most_files = max(most_files, len(_wal_files(wal_dir)))
        written = wal.segments_cut + 1
        assert written > 20  # the log really spanned many segments
        assert wal.segments_released == written - wal.segment_count
    files = _wal_files(wal_dir)
    assert len(files) <= 2
    assert most_files <= 8  # one interval's worth of segments plus the kept one
    snaps = sorted(os.listdir(snapper.dir))
    assert len([n for n in snaps if n.endswith(".snap")]) == 2
    assert len([n for n in snaps if n.endswith(".snap.db")]) == 2

    newest = snapper.load_newest()
    assert newest is not None
    meta, _ = newest
    assert meta.index == 1000
    wal, rec = WAL.open(wal_dir, snapshot=meta, segment_size=SEGMENT)
    wal.close()
    assert rec.metadata == META  # every segment repeats it
    assert rec.snapshot == WalSnapshot(index=1000, term=1)
    assert rec.hard_state == hs(1000)
    assert rec.entries == []


def test_release_keeps_entries_after_the_snapshot(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SEGMENT) as wal:
        for i in range(1, 301, BATCH):
            wal.save(hs(i), entries(i, i + BATCH - 1), must_sync=True)
        wal.save_snapshot(WalSnapshot(index=250, term=1))
        removed = wal.release_to(250)
        assert removed > 0
    wal, rec = WAL.open(wal_dir, segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(251, 300)
    # restoring from the snapshot's index needs nothing that was released
    wal, rec = WAL.open(wal_dir, snapshot=WalSnapshot(index=250, term=1), segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(251, 300)


def test_release_never_goes_past_the_latest_snapshot_marker(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SEGMENT) as wal:
        for i in range(1, 301, BATCH):
            wal.save(None, entries(i, i + BATCH - 1), must_sync=True)
        assert wal.release_to(300) == 0  # no snapshot marker yet: nothing may go
        wal.save_snapshot(WalSnapshot(index=100, term=1))
        wal.release_to(300)  # clamped to 100
    wal, rec = WAL.open(wal_dir, segment_size=SEGMENT)
    wal.close()
    assert rec.entries == entries(101, 300)


def test_snapshot_hooks_are_called(tmp_path: Path) -> None:
    obs = Recorder()
    snapper = Snapshotter(str(tmp_path / "snap"), observer=obs)
    snapper.save(SnapshotMetadata(index=5, term=1), b"image")
    assert len(obs.snapshot_saves) == 1
    assert len(obs.snapshot_fsyncs) == 1
    assert len(obs.snapshot_db_fsyncs) == 1
