"""Snapshot files: atomic save beside the db image, newest valid one wins, purge keeps two."""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path

import crc32c
import pytest

from node.raft.messages import ConfState, SnapshotMetadata
from node.wal import Snapshotter, snapshotter


def _meta(index: int, term: int = 2) -> SnapshotMetadata:
    return SnapshotMetadata(index=index, term=term, conf_state=ConfState(voters=(1, 2, 3)))


def test_save_moves_the_image_and_load_newest_returns_it(tmp_path: Path) -> None:
    snapper = Snapshotter(str(tmp_path / "snap"))
    image = tmp_path / "snap" / ".0000000000000010.db.tmp"
    image.write_bytes(b"sqlite image" * 1000)
    snap_path = snapper.save(_meta(16), str(image))
    assert os.path.basename(snap_path) == "0000000000000002-0000000000000010.snap"
    assert not image.exists()
    meta, db_path = snapper.load_newest() or (None, "")
    assert meta == _meta(16)
    assert db_path == snap_path + ".db"
    with open(db_path, "rb") as fh:
        assert fh.read() == b"sqlite image" * 1000


def test_image_from_another_directory_and_from_bytes(tmp_path: Path) -> None:
    snapper = Snapshotter(str(tmp_path / "snap"))
    elsewhere = tmp_path / "incoming.db"
    elsewhere.write_bytes(b"received")
    snapper.save(_meta(5), str(elsewhere))
    snapper.save(_meta(9), b"in memory")
    meta, db_path = snapper.load_newest() or (None, "")
    assert meta is not None
    assert meta.index == 9
    assert db_path is not None  # the image was saved beside the .snap
    with open(db_path, "rb") as fh:
        assert fh.read() == b"in memory"


def test_load_newest_is_none_when_empty(tmp_path: Path) -> None:
    assert Snapshotter(str(tmp_path / "snap")).load_newest() is None


@pytest.mark.parametrize("damage", ["meta-flip", "meta-truncated", "db-flip", "db-missing"])
def test_corrupt_newest_snapshot_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    snapper = Snapshotter(str(tmp_path / "snap"))
    snapper.save(_meta(10), b"older image")
    newest = snapper.save(_meta(20), b"newer image")
    if damage == "meta-flip":
        raw = bytearray(open(newest, "rb").read())
        raw[-5] ^= 0x01
        open(newest, "wb").write(bytes(raw))
    elif damage == "meta-truncated":
        os.truncate(newest, 10)
    elif damage == "db-flip":
        open(newest + ".db", "wb").write(b"newer imagE")
    else:
        os.unlink(newest + ".db")
    with caplog.at_level(logging.WARNING, logger="node.wal"):
        found = Snapshotter(snapper.dir).load_newest()
    assert found is not None
    assert found[0].index == 10
    assert any(newest in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def _rewrite_body(path: str, change: dict[str, object]) -> None:
    """Rewrite a .snap file's JSON body with `change` applied, its header CRC redone."""
    raw = open(path, "rb").read()
    body = json.loads(raw[snapshotter._HEAD.size :])
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    data = json.dumps(body, sort_keys=True).encode()
    head = snapshotter._HEAD.pack(snapshotter.MAGIC, zlib.crc32(data), len(data))
    open(path, "wb").write(head + data)


def test_an_image_is_summed_by_crc32c_and_an_older_crc32_one_still_loads(tmp_path: Path) -> None:
    snapper = Snapshotter(str(tmp_path / "snap"))
    image = b"old layout image" * 100
    newest = snapper.save(_meta(7), image)
    body = json.loads(open(newest, "rb").read()[snapshotter._HEAD.size :])
    assert (body["db_checksum"], body["db_crc32"]) == ("crc32c", crc32c.crc32c(image))
    _rewrite_body(newest, {"db_checksum": None, "db_crc32": zlib.crc32(image)})  # older writer
    found = Snapshotter(snapper.dir).load_newest()
    assert found is not None
    assert found[0].index == 7


def test_an_image_summed_by_an_unknown_kind_is_skipped_with_a_clear_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapper = Snapshotter(str(tmp_path / "snap"))
    snapper.save(_meta(10), b"older image")
    newest = snapper.save(_meta(20), b"newer image")
    _rewrite_body(newest, {"db_checksum": "xxhash"})
    with caplog.at_level(logging.WARNING, logger="node.wal"):
        found = Snapshotter(snapper.dir).load_newest()
    assert found is not None
    assert found[0].index == 10
    assert any("unknown image checksum kind 'xxhash'" in r.getMessage() for r in caplog.records)


def test_purge_keeps_the_newest_two_and_leaves_foreign_files_alone(tmp_path: Path) -> None:
    snapper = Snapshotter(str(tmp_path / "snap"))
    live_db = tmp_path / "snap" / "db"
    live_db.write_bytes(b"the live mvcc database")
    for index in (10, 20, 30, 40):
        snapper.save(_meta(index), f"image {index}".encode())
    orphan = tmp_path / "snap" / "0000000000000001-0000000000000005.snap.db"
    orphan.write_bytes(b"image whose .snap was never written")
    leftover = tmp_path / "snap" / "0000000000000002-0000000000000032.snap.tmp"
    leftover.write_bytes(b"interrupted")
    snapper.purge(keep=2)
    names = sorted(os.listdir(snapper.dir))
    assert names == [
        "0000000000000002-000000000000001e.snap",
        "0000000000000002-000000000000001e.snap.db",
        "0000000000000002-0000000000000028.snap",
        "0000000000000002-0000000000000028.snap.db",
        "db",
    ]
    meta, _ = snapper.load_newest() or (None, None)
    assert meta is not None
    assert meta.index == 40
