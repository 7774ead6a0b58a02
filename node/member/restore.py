"""`raftmon snapshot restore|status FILE`: etcdctl 3.4's snapshot commands for raftmon files.

A raftmon snapshot (Maintenance.Snapshot, saved by `etcdctl snapshot save` or the
JSON gateway) is the member's SQLite database followed by its sha256; etcd's
`etcdctl snapshot restore/status` read bbolt files and cannot read it, so these two
commands take etcdctl's flags, messages and output instead.

restore writes a fresh data dir for a member of a NEW cluster: the database with
its keys, revisions and leases, its applied index set back for a Raft log that
starts again, and the WAL a first boot creates, under the member and cluster ids
that the new --initial-cluster and --initial-cluster-token give (the member derives
them the same way, see node.config). Starting each member with those same flags
brings the cluster up with the data. The data dir is built beside its final place
and renamed into it, so a refused or interrupted restore leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, BinaryIO

from node.config import ConfigError, parse_config
from node.logfmt import configure
from node.mvcc.dbfile import DBFileError, DBStatus, adopt_for_new_cluster, status
from node.server.bootstrap import bootstrap
from node.server.observer import NullMemberObserver
from node.server.snapshot_stream import SHA256_SIZE, has_checksum

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

EXIT_ERROR = 1  # etcdctl's ExitError
EXIT_BAD_ARGS = 128  # etcdctl's ExitBadArgs
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


# ---- status -----------------------------------------------------------------------------
def _humanize_bytes(n: int) -> str:
    """go-humanize's Bytes: SI units, one decimal under 10 ("2.1 MB", "82 kB", "7 B")."""
    if n < 10:
        return f"{n} B"
    sizes = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    e = math.floor(math.log(n) / math.log(1000))
    val = math.floor(n / 1000**e * 10 + 0.5) / 10
    return f"{val:.1f} {sizes[e]}" if val < 10 else f"{val:.0f} {sizes[e]}"


def _table(header: list[str], row: list[str]) -> str:
    """etcdctl's table (olekukonko/tablewriter): centred upper-case header, cells right."""
    widths = [max(len(h), len(c)) for h, c in zip(header, row, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        gap = width - len(text)
        return " " * (gap // 2) + text + " " * (gap - gap // 2)

    head = (
        "|"
        + "|".join(f" {centred(h.upper(), w)} " for h, w in zip(header, widths, strict=True))
        + "|"
    )
    body = "|" + "|".join(f" {c:>{w}} " for c, w in zip(row, widths, strict=True)) + "|"
    return "\n".join([rule, head, rule, body, rule])


def format_status(st: DBStatus, write_out: str) -> str:
    """`etcdctl snapshot status -w <write_out>`'s text."""
    row = [f"{st.hash:x}", str(st.revision), str(st.total_key), _humanize_bytes(st.total_size)]
    if write_out == "table":
        return _table(["hash", "revision", "total keys", "total size"], row)
    if write_out == "json":
        return json.dumps(
            {
                "hash": st.hash,
                "revision": st.revision,
                "totalKey": st.total_key,
                "totalSize": st.total_size,
            },
            separators=(",", ":"),
        )
    if write_out == "fields":
        return "\n".join(
            [
                f'"Hash" : {st.hash}',
                f'"Revision" : {st.revision}',
                f'"Keys" : {st.total_key}',
                f'"Size" : {st.total_size}',
            ]
        )
    return ", ".join(row)


def snapshot_status(snapshot: str) -> DBStatus:
    if not os.path.exists(snapshot):
        raise RestoreError(f"stat {snapshot}: no such file or directory")
    with _db_copy(snapshot) as db_path:
        try:
            return status(db_path)
        except DBFileError as err:
            raise RestoreError(str(err)) from None


# ---- command line -------------------------------------------------------------------------
def _go_bool_flags(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """pflag's `--flag=true|false` for boolean flags, which argparse's store_true refuses."""
    out = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if sep and flag in names:
            if value.lower() in ("1", "t", "true"):
                out.append(flag)
                continue
            if value.lower() in ("0", "f", "false"):
                continue
        out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftmon snapshot",
        description="Restore a raftmon snapshot into a new data dir, or print its status "
        "(etcdctl snapshot's flags; etcdctl itself reads only etcd's bbolt files).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rs = sub.add_parser("restore", help="Restores a raftmon member snapshot to a data directory")
    rs.add_argument("filename", nargs="*")
    rs.add_argument("--name", default="default", help="Human-readable name for this member")
    rs.add_argument("--data-dir", default="", help="Path to the data directory")
    rs.add_argument(
        "--initial-cluster",
        default="default=http://localhost:2380",
        help="Initial cluster configuration for restore bootstrap",
    )
    rs.add_argument(
        "--initial-cluster-token",
        default="etcd-cluster",
        help="Initial cluster token for the etcd cluster during restore bootstrap",
    )
    rs.add_argument(
        "--initial-advertise-peer-urls",
        default="http://localhost:2380",
        help="List of this member's peer URLs to advertise to the rest of the cluster",
    )
    rs.add_argument(
        "--skip-hash-check",
        action="store_true",
        help="Ignore snapshot integrity hash value (required if copied from data directory)",
    )
    st = sub.add_parser("status", help="Gets backend snapshot status of a given file")
    st.add_argument("filename", nargs="*")
    st.add_argument(
        "-w",
        "--write-out",
        default="simple",
        choices=("simple", "table", "json", "fields"),
        help="set the output format",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(_go_bool_flags(argv, ("--skip-hash-check",)))
    if len(args.filename) != 1:
        sys.stderr.write(f"Error: snapshot {args.command} requires exactly one argument\n")
        return EXIT_BAD_ARGS
    snapshot = args.filename[0]
    try:
        if args.command == "status":
            sys.stdout.write(format_status(snapshot_status(snapshot), args.write_out) + "\n")
            return 0
        configure("info")
        restore(
            snapshot,
            name=args.name,
            data_dir=args.data_dir or f"{args.name}.etcd",
            initial_cluster=args.initial_cluster,
            initial_cluster_token=args.initial_cluster_token,
            initial_advertise_peer_urls=args.initial_advertise_peer_urls,
            skip_hash_check=args.skip_hash_check,
        )
    except (RestoreError, OSError) as err:
        sys.stderr.write(f"Error: {err}\n")
        return EXIT_ERROR
    return 0
