"""Read a raftmon snapshot file: verify it, restore it into a new data dir, sum it up.

A raftmon snapshot (Maintenance.Snapshot, saved by `etcdctl snapshot save` or the
JSON gateway) is the member's SQLite database followed by its sha256; etcd's
`etcdctl snapshot restore/status` read bbolt files and cannot read it, so
`raftmon snapshot` (node.member.snapshot_cli) does their work here, in etcdctl's words.

restore writes a fresh data dir for a member of a NEW cluster: the database with
its keys, revisions and leases, its applied index set back for a Raft log that
starts again, and the WAL a first boot creates, under the member and cluster ids
that the new --initial-cluster and --initial-cluster-token give (the member derives
them the same way, see node.config). Starting each member with those same flags
brings the cluster up with the data. The data dir is built beside its final place
and renamed into it, so a refused or interrupted restore leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, BinaryIO

from node.config import ConfigError, parse_config
from node.mvcc.dbfile import DBFileError, DBStatus, adopt_for_new_cluster, status
from node.server.bootstrap import bootstrap
from node.server.observer import NullMemberObserver
from node.server.snapshot_stream import SHA256_SIZE, has_checksum

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

COPY_BYTES = 1 << 20


class RestoreError(Exception):
    """A refusal, worded as etcdctl words it."""


# ---- reading a snapshot file ------------------------------------------------------------
def _go_bytes(data: bytes) -> str:
    """A byte slice as Go's %v prints it: [1 2 3]."""
    return "[" + " ".join(str(b) for b in data) + "]"


def _copy(src: BinaryIO, dst: BinaryIO, size: int) -> bytes:
    """Copy `size` bytes; returns their sha256."""
    digest = hashlib.sha256()
    left = size
    while left > 0:
        block = src.read(min(COPY_BYTES, left))
        if not block:
            raise RestoreError("unexpected EOF")
        digest.update(block)
        dst.write(block)
        left -= len(block)
    return digest.digest()


def extract_db(snapshot: str, db_path: str, *, skip_hash_check: bool) -> None:
    """Write the database part of `snapshot` to `db_path`, checking its sha256 trailer.

    As etcd's saveDB: a file of whole sectors + 32 bytes has a trailer, which must
    match unless --skip-hash-check; a file without one (a database copied from a data
    dir) is taken only with --skip-hash-check.
    """
    size = os.path.getsize(snapshot)
    has_hash = has_checksum(size)
    if not has_hash and not skip_hash_check:
        raise RestoreError("snapshot missing hash but --skip-hash-check=false")
    db_size = size - SHA256_SIZE if has_hash else size
    with open(snapshot, "rb") as src, open(db_path, "wb") as dst:
        got = _copy(src, dst, db_size)
        want = src.read(SHA256_SIZE) if has_hash else b""
        dst.flush()
        os.fsync(dst.fileno())
    if has_hash and not skip_hash_check and got != want:
        raise RestoreError(f"expected sha256 {_go_bytes(want)}, got {_go_bytes(got)}")


@contextlib.contextmanager
def _db_copy(snapshot: str) -> Iterator[str]:
    """The database part of `snapshot` in a temporary file (status reads, never verifies)."""
    with tempfile.TemporaryDirectory(prefix="raftmon-snapshot-") as tmp:
        path = os.path.join(tmp, "db")
        extract_db(snapshot, path, skip_hash_check=True)
        yield path


# ---- restore ----------------------------------------------------------------------------
def restore(
    snapshot: str,
    *,
    name: str,
    data_dir: str,
    initial_cluster: str,
    initial_cluster_token: str,
    initial_advertise_peer_urls: str,
    skip_hash_check: bool = False,
) -> DBStatus:
    """Build `data_dir` for member `name` of a new cluster from `snapshot`; see the module."""
    try:
        cfg = parse_config(
            [
                f"--name={name}",
                f"--data-dir={data_dir}",
                f"--initial-cluster={initial_cluster}",
                f"--initial-cluster-token={initial_cluster_token}",
                f"--initial-advertise-peer-urls={initial_advertise_peer_urls}",
            ],
            environ={},
        )
    except ConfigError as err:
        raise RestoreError(str(err)) from None
    if os.path.exists(data_dir):
        raise RestoreError(f'data-dir "{data_dir}" exists')
    if not os.path.exists(snapshot):
        raise RestoreError(f"stat {snapshot}: no such file or directory")
    parent = os.path.dirname(os.path.abspath(data_dir))
    os.makedirs(parent, exist_ok=True)
    building = tempfile.mkdtemp(prefix=f".{os.path.basename(data_dir)}.restore-", dir=parent)
    try:
        staged = dataclasses.replace(cfg, data_dir=building)
        snap_dir = os.path.join(staged.member_dir, "snap")
        log.info(
            "restoring snapshot",
            extra={
                "fields": {
                    "path": snapshot,
                    "wal-dir": os.path.join(cfg.member_dir, "wal"),
                    "data-dir": data_dir,
                    "snap-dir": os.path.join(cfg.member_dir, "snap"),
                }
            },
        )
        os.makedirs(snap_dir)
        db_path = os.path.join(snap_dir, "db")
        extract_db(snapshot, db_path, skip_hash_check=skip_hash_check)
        try:
            db = adopt_for_new_cluster(db_path)
        except DBFileError as err:
            raise RestoreError(str(err)) from None
        # What a first boot on this database creates: the WAL under the new ids.
        opened = bootstrap(staged, NullMemberObserver())
        opened.wal.close()
        opened.kv.close()
        os.rename(building, data_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info(
        "restored snapshot",
        extra={
            "fields": {
                "path": snapshot,
                "data-dir": data_dir,
                "member-id": f"{cfg.member_id:x}",
                "cluster-id": f"{cfg.cluster_id:x}",
                "revision": db.revision,
            }
        },
    )
    return db


# ---- status ----------------------------------------------------------------------------
def snapshot_status(snapshot: str) -> DBStatus:
    if not os.path.exists(snapshot):
        raise RestoreError(f"stat {snapshot}: no such file or directory")
    with _db_copy(snapshot) as db_path:
        try:
            return status(db_path)
        except DBFileError as err:
            raise RestoreError(str(err)) from None
