"""A database image at rest: what `snapshot status` reports and `snapshot restore` adopts.

A snapshot streamed by Maintenance.Snapshot is a copy of the member's SQLite file
(`KVStore.backup`). Reading one needs no KVStore: these functions open the file on
their own connection, so the tools that inspect or restore a snapshot never load a
key index or start a watch hub.
"""

from __future__ import annotations

import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

from node.mvcc import dedup, schema

# A file of an older schema is read as it is (status) and upgraded when adopted
# (schema.migrate), so a snapshot saved from an older raftmon still restores.
READABLE_VERSIONS = (1, schema.SCHEMA_VERSION)


class DBFileError(Exception):
    """The file is not a usable raftmon database; the message says why."""


@dataclass(frozen=True, slots=True)
class DBStatus:
    """etcdctl's snapshot status: hash, revision, total keys, total size (its JSON names)."""

    hash: int  # CRC-32 of every table's name and rows (etcd: CRC-32C of every bucket)
    revision: int
    total_key: int  # rows in every table, as etcd counts the entries of every bucket
    total_size: int  # bytes of the database (not of a checksum trailer after it)


def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    """Open `path`, never creating it (sqlite3.connect would make an empty file)."""
    mode = "ro" if read_only else "rw"
    uri = f"{Path(path).absolute().as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _check(conn: sqlite3.Connection) -> dict[str, int]:
    """SQLite's integrity check and our schema's marks; returns the meta table."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as err:
        raise DBFileError(f"snapshot file is not a raftmon database: {err}") from None
    if problems != ["ok"]:
        # etcd's words for bbolt's tx.Check() findings
        raise DBFileError(
            f"snapshot file integrity check failed. {len(problems)} errors found.\n"
            + "\n".join(problems)
        )
    try:
        meta = {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM meta")}
    except sqlite3.DatabaseError as err:
        raise DBFileError(f"snapshot file is not a raftmon database: {err}") from None
    version = meta.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise DBFileError(
            f"snapshot file has schema version {version}, this raftmon reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return meta


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    )
    return [str(r[0]) for r in rows]


def _row_bytes(row: tuple[object, ...]) -> bytes:
    """One row, typed and length-prefixed, so different rows never hash alike by accident."""
    out = bytearray()
    for value in row:
        if value is None:
            out += b"n"
        elif isinstance(value, int):
            out += b"i" + value.to_bytes(8, "big", signed=True)
        elif isinstance(value, bytes):
            out += b"b" + len(value).to_bytes(8, "big") + value
        else:
            text = str(value).encode()
            out += b"t" + len(text).to_bytes(8, "big") + text
    return bytes(out)


def status(path: str) -> DBStatus:
    """Check the database at `path` and sum it up (etcd's snapshot Status).

    Every table's rows are read in primary-key order, so two files with the same
    content give the same hash whatever their page layout (a defragmented copy included).
    The request ids applied lately (dedup.TABLES) are not content: each member prunes
    them at its own commits, and a restore for a new cluster drops them.
    """
    conn = _connect(path, read_only=True)
    try:
        meta = _check(conn)
        crc, total = 0, 0
        for table in _tables(conn):
            if table in dedup.TABLES:
                continue
            crc = zlib.crc32(table.encode(), crc)
            columns = len(conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description)
            order = ",".join(str(i + 1) for i in range(columns))
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
                crc = zlib.crc32(_row_bytes(row), crc)
                total += 1
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        page_count = int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()
    return DBStatus(
        hash=crc,
        revision=meta["current_rev"],
        total_key=total,
        total_size=page_size * page_count,
    )


def adopt_for_new_cluster(path: str) -> DBStatus:
    """Make a snapshot's database the backend of a member of a NEW cluster.

    The new cluster's Raft log starts again at index 1, so the applied index goes back
    to 0 (etcd's restore rewrites its consistent index for the same reason): otherwise
    the member would skip the new log's first entries as already applied. Keys,
    revisions, leases and alarms stay as they are, as etcd's restore keeps them.
    The old cluster's members go: the new cluster's log adds its own, from the flags;
    so do the request ids applied at the old log's indexes (node/mvcc/dedup.py).
    A file of an older schema is upgraded to this raftmon's (schema.migrate).
    """
    conn = _connect(path, read_only=False)
    try:
        _check(conn)
        conn.execute("PRAGMA journal_mode=DELETE")
        schema.migrate(conn)
        conn.execute("UPDATE meta SET value = 0 WHERE name = 'applied_index'")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        for table in ("member", "member_removed", *dedup.TABLES):
            if table in tables:
                conn.execute(f"DELETE FROM {table}")
    finally:
        conn.close()
    return status(path)
