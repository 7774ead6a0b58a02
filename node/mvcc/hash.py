"""etcd's HashKV and Hash over the SQLite store: hashes of content, never of pages.

Every member's SQLite file is laid out differently (page order, free pages, VACUUM
history), so the hashes read rows in a canonical order and hash the bytes etcd would
hold for them, which are the same on every member that applied the same entries.

HashKV(revision) is etcd 3.4's `store.HashByRev` (mvcc/kvstore.go):
- the bytes hashed are etcd's key bucket: the bucket name b"key", then for each stored
  key revision in (main, sub) order its bbolt key (8-byte big-endian main revision, "_",
  8-byte sub revision, "t" for a tombstone) and its value (the mvccpb.KeyValue protobuf:
  key, create_revision, mod_revision, version, value, lease; a tombstone carries only
  the key);
- revisions above `revision` are left out; of those at or below the compact revision,
  only the ones etcd's `kvindex.Keep(revision)` names: each key's latest revision at or
  before `revision` unless that is a tombstone. (3.4 keeps at the hashed revision, not
  at the compact revision; and when no key is live at `revision`, it filters nothing:
  both kept, so the bytes equal etcd's.) A tombstone exactly at the compact revision,
  which our compaction keeps but etcd's removes, is never hashed.
- revision 0 means the current one; a revision at or below the compact revision is
  ErrCompacted (at it, too: unlike a range), above the current one ErrFutureRev.

The one difference from etcd is the checksum: etcd uses CRC-32C (Castagnoli), which
Python's standard library lacks, and a table loop in Python would hold the GIL for
seconds on a large store; `zlib.crc32` (IEEE) runs in C and releases the GIL. The
checksum is a parameter, so a test feeds the same bytes to CRC-32C and gets etcd's
number exactly.

Hash() is etcd's Maintenance.Hash: a hash of the whole store, which for etcd is every
bbolt bucket but the consistent index. Ours covers, in this order, every row of `kv`
(all retained revisions, as above but unfiltered), `live` (the key index), `lease`,
`alarm` and `meta` without `applied_index` and `finished_compact_rev` (each member
applies and deletes compacted rows at its own pace; rows condemned but not deleted yet
are left out too), as etcd leaves out its consistent_index). All of these are
replicated state, equal on members at the same applied revision. It is never etcd's
number (the buckets differ).

Both read a snapshot on a read-only connection of their own, so they run in a worker
thread while the loop applies (the caller commits the open batch first, as for
`KVStore.range_snapshot`).
"""

from __future__ import annotations

import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from node.errors import ErrBackendDamaged, ErrCompacted, ErrFutureRev
from node.mvcc import requests as rq
from node.mvcc.compaction import FINISHED_META, superseded_at
from node.mvcc.observer import NULL_BACKEND_OBSERVER, BackendObserver
from node.mvcc.schema import first_id_sql, row_id, split_id

R = TypeVar("R")
Checksum = Callable[[bytes, int], int]  # (data, running value) -> running value, as zlib.crc32

CHECKSUM: Checksum = zlib.crc32
KEY_BUCKET = b"key"
NEVER_COMPACTED = -1  # etcd's compactMainRev before the first compaction
_CHUNK_ROWS = 2000  # rows joined before each checksum call

_REV_KEY = struct.Struct(">QcQ")
_U64 = (1 << 64) - 1
_ROW = tuple[int, int, bytes, int, int, int, bytes | None]  # rev, sub, key, create, ver, lease, val


def _varint(n: int) -> bytes:
    n &= _U64  # int64 fields: negatives are their 64-bit two's complement, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key_value_bytes(
    key: bytes, create: int, mod: int, version: int, value: bytes, lease: int
) -> bytes:
    """mvccpb.KeyValue as proto3 marshals it: fields in number order, zero values left out."""
    out = bytearray()
    if key:
        out += b"\x0a" + _varint(len(key)) + key
    if create:
        out += b"\x10" + _varint(create)
    if mod:
        out += b"\x18" + _varint(mod)
    if version:
        out += b"\x20" + _varint(version)
    if value:
        out += b"\x2a" + _varint(len(value)) + value
    if lease:
        out += b"\x30" + _varint(lease)
    return bytes(out)


def revision_row_bytes(row: _ROW) -> bytes:
    """One key revision as etcd's key bucket holds it: bbolt key, then value."""
    rev, sub, key, create, version, lease, value = row
    if version == 0:  # tombstone: the revision marked "t", a KeyValue of the key alone
        return _REV_KEY.pack(rev, b"_", sub) + b"t" + key_value_bytes(key, 0, 0, 0, b"", 0)
    return _REV_KEY.pack(rev, b"_", sub) + key_value_bytes(
        key, create, rev, version, value or b"", lease
    )


def _checksum_chunks(chunks: Iterable[bytes], checksum: Checksum) -> int:
    value = 0
    for chunk in chunks:
        value = checksum(chunk, value)
    return value & 0xFFFF_FFFF


def _chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    batch: list[bytes] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) >= _CHUNK_ROWS:
            yield b"".join(batch)
            batch.clear()
    if batch:
        yield b"".join(batch)


# ---- HashKV ---------------------------------------------------------------------------
_AT_OR_BELOW_R = f"id < {first_id_sql(':r + 1')}"  # rows of revisions <= :r


def _superseded(conn: sqlite3.Connection, revision: int, below: int) -> set[int]:
    """Ids under `below` that a row at or before `revision` replaced (it links to them).

    Only rows at or below the compact revision ask (node/mvcc/compaction.py), so only
    those ids are kept: about one per key after a compaction, plus rows still pending.
    """
    return superseded_at(
        conn.execute(
            f"SELECT id, prev_id FROM kv WHERE {_AT_OR_BELOW_R} AND prev_id > 0 "
            "AND prev_id < :below",
            {"r": revision, "below": below},
        ),
        revision,
    )


def _any_key_live(conn: sqlite3.Connection, revision: int, replaced: set[int]) -> bool:
    """etcd's `len(keep) > 0`: some key's latest revision at or before `revision` is a put.

    `replaced`: every id a row at or before `revision` replaced (a put's latest version
    is one no such row replaced).
    """
    rows = conn.execute(
        f"SELECT id FROM kv WHERE {_AT_OR_BELOW_R} AND version != 0", {"r": revision}
    )
    return any(rid not in replaced for (rid,) in rows)


def _kv_rows(conn: sqlite3.Connection, revision: int, compact: int) -> Iterator[bytes]:
    """The key bucket's hashed content at `revision` (already checked), in etcd's order."""
    yield KEY_BUCKET
    keep_filters: bool | None = None  # etcd's len(keep) > 0, asked once, when it matters
    below = row_id(compact + 1, 0)
    not_latest = _superseded(conn, revision, below)  # of the rows at or below `compact`
    condemned = _superseded(conn, compact, below)
    cursor = conn.execute(
        "SELECT id, key, create_rev, version, lease, value "
        f"FROM kv WHERE {_AT_OR_BELOW_R} ORDER BY id",
        {"r": revision},
    )
    for rid, key, create, version, lease, value in cursor:
        rev, sub = split_id(rid)
        if rev <= compact:
            if version == 0:
                continue  # a tombstone is never kept (and etcd has none left below here)
            if rid in not_latest:
                if keep_filters is None:
                    keep_filters = _any_key_live(
                        conn, revision, _superseded(conn, revision, row_id(revision + 1, 0))
                    )
                if keep_filters or (rev < compact and rid in condemned):
                    continue  # (condemned: deleted on members whose compaction got there)
        yield revision_row_bytes((rev, sub, bytes(key), create, version, lease, value))


def _meta(conn: sqlite3.Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM meta")}


def hash_kv_conn(
    conn: sqlite3.Connection, revision: int, checksum: Checksum = CHECKSUM
) -> rq.HashKVResponse:
    """HashKV on an open connection, inside whatever snapshot the caller holds."""
    meta = _meta(conn)
    current, compact = meta["current_rev"], meta["compact_rev"]
    if revision > 0 and revision <= compact:
        raise ErrCompacted
    if revision > current:
        raise ErrFutureRev
    at = revision or current
    value = _checksum_chunks(_chunked(_kv_rows(conn, at, compact)), checksum)
    return rq.HashKVResponse(
        revision=current, hash=value, compact_revision=compact or NEVER_COMPACTED
    )


# ---- Hash -----------------------------------------------------------------------------
def _ints(*values: int) -> bytes:
    return b"".join(struct.pack(">q", v) for v in values)


def _blob(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _store_rows(conn: sqlite3.Connection) -> Iterator[bytes]:
    yield KEY_BUCKET
    # Rows a compaction condemned but has not deleted yet are left out: members delete
    # them in batches at their own pace (node/mvcc/compaction.py).
    compact = _meta(conn)["compact_rev"]
    condemned = _superseded(conn, compact, row_id(compact, 0))
    for rid, key, create, version, lease, value in conn.execute(
        "SELECT id, key, create_rev, version, lease, value FROM kv ORDER BY id"
    ):
        rev, sub = split_id(rid)
        if rev < compact and (version == 0 or rid in condemned):
            continue
        yield revision_row_bytes((rev, sub, bytes(key), create, version, lease, value))
    yield b"live"
    for key, create, mod, version, lease in conn.execute(
        "SELECT key, create_rev, mod_rev, version, lease FROM live ORDER BY key"
    ):
        yield _blob(bytes(key)) + _ints(create, mod, version, lease)
    yield b"lease"
    for lease_id, ttl in conn.execute("SELECT id, ttl FROM lease ORDER BY id"):
        yield _ints(lease_id, ttl)
    yield b"alarm"
    for member, kind in conn.execute("SELECT member_id, type FROM alarm ORDER BY member_id, type"):
        yield _ints(member, kind)
    yield b"meta"
    for name, value in sorted(_meta(conn).items()):
        if name not in ("applied_index", FINISHED_META):  # each member's own pace
            yield _blob(name.encode()) + _ints(value)


def hash_conn(conn: sqlite3.Connection, checksum: Checksum = CHECKSUM) -> rq.HashResponse:
    """Hash on an open connection, inside whatever snapshot the caller holds."""
    current = _meta(conn)["current_rev"]
    return rq.HashResponse(
        revision=current, hash=_checksum_chunks(_chunked(_store_rows(conn)), checksum)
    )


# ---- from a snapshot of the database file ---------------------------------------------
def _snapshot_conn(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"{Path(path).absolute().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute("BEGIN")  # one snapshot for meta and rows alike
    return conn


def _damaged(err: sqlite3.DatabaseError) -> bool:
    return getattr(err, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _on_snapshot(path: str, work: Callable[[sqlite3.Connection], R]) -> R:
    """`work` on a read snapshot of the database at `path`; a damaged file is
    ErrBackendDamaged (the member's data, not the request, is at fault)."""
    try:
        conn = _snapshot_conn(path)
        try:
            return work(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        if not _damaged(err):
            raise
        raise ErrBackendDamaged from err


def hash_kv_file(
    path: str, revision: int, observer: BackendObserver = NULL_BACKEND_OBSERVER
) -> rq.HashKVResponse:
    """HashKV of the last committed state of the database at `path` (a worker thread's job).

    Observed as etcd_mvcc_hash_rev_duration_seconds when it answers (etcd does not time
    a refused revision).
    """
    started = time.perf_counter()
    resp = _on_snapshot(path, lambda conn: hash_kv_conn(conn, revision))
    observer.on_hash_rev(time.perf_counter() - started)
    return resp


def hash_file(path: str, observer: BackendObserver = NULL_BACKEND_OBSERVER) -> rq.HashResponse:
    """Hash of the last committed state of the database at `path` (a worker thread's job).

    Observed as etcd_mvcc_hash_duration_seconds.
    """
    started = time.perf_counter()
    resp = _on_snapshot(path, hash_conn)
    observer.on_hash(time.perf_counter() - started)
    return resp
