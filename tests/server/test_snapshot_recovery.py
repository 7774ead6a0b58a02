"""A follower that crashed between saving the leader's snapshot and installing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from node.raft.messages import ConfState, SnapshotMetadata
from node.server.snapshot_recovery import received_image, recover_backend
from node.wal import Snapshotter
from tests.mvcc.conftest import Log


def _meta(index: int) -> SnapshotMetadata:
    return SnapshotMetadata(index=index, term=2, conf_state=ConfState(voters=(1, 2, 3)))


def _store(path: Path, puts: int) -> KVStore:
    store = KVStore.open(str(path))
    raft = Log(store)
    for i in range(puts):
        raft.apply(rq.PutRequest(f"k{i}".encode(), b"v"))
    store.commit()
    return store


def test_the_received_image_is_moved_into_place_at_start_up(tmp_path: Path) -> None:
    snap_dir = tmp_path / "snap"
    snapshotter = Snapshotter(str(snap_dir))
    follower = _store(snap_dir / "db", puts=5)
    leader = _store(tmp_path / "leader" / "db", puts=20)
    image = received_image(str(snap_dir), 15)
    leader.backup(image)  # what the transport stored durably
    snapshotter.save(_meta(15))  # the marker, saved before the crash; install never ran
    recover_backend(snapshotter, follower)
    assert follower.applied_index() == 20
    assert follower.get(b"k19") is not None
    assert not Path(image).exists()  # moved, not copied
    assert sorted(p.name for p in snap_dir.iterdir() if "db" in p.name) == [
        "db",
        "db-shm",
        "db-wal",
    ]
    follower.close()
    leader.close()


def test_a_database_at_or_past_the_marker_is_left_alone(tmp_path: Path) -> None:
    snap_dir = tmp_path / "snap"
    snapshotter = Snapshotter(str(snap_dir))
    store = _store(snap_dir / "db", puts=10)
    snapshotter.save(_meta(10))
    recover_backend(snapshotter, store)
    assert store.applied_index() == 10
    store.close()


def test_a_database_behind_the_marker_without_an_image_refuses_to_start(tmp_path: Path) -> None:
    snap_dir = tmp_path / "snap"
    snapshotter = Snapshotter(str(snap_dir))
    store = _store(snap_dir / "db", puts=3)
    snapshotter.save(_meta(15))
    with pytest.raises(RuntimeError, match="no image"):
        recover_backend(snapshotter, store)
    store.close()


def test_a_marker_has_no_image_and_loads_as_one(tmp_path: Path) -> None:
    snapshotter = Snapshotter(str(tmp_path / "snap"))
    path = Path(snapshotter.save(_meta(7)))
    assert path.stat().st_size < 512
    assert snapshotter.load_newest() == (_meta(7), None)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
