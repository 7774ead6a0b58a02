"""Physical compaction: deleting the revisions a compaction condemned, in bounded batches.

etcd splits a compaction in two (mvcc/kvstore.go, kvstore_compaction.go): the apply
records the compact revision durably (`scheduledCompactRev`) and from then on reads
below it answer ErrCompacted; the deletion of the old revisions runs afterwards on
its own goroutine, `--experimental-compaction-batch-limit` (1000) stored revisions at
a time, committing and pausing 10 ms between batches, and records
`finishedCompactRev` when done. So a compaction of a large store never holds the
backend for long, and a member restarted half-way simply starts the deletion again.

This module is the second half over SQLite: which rows a compaction condemns (the
same predicate everywhere, so HashKV and Hash can leave out rows that are condemned
but not deleted yet and stay equal across members that deleted at different paces)
and the deletion of one batch. The store (node/mvcc/store.py) keeps the cursor; the
server runs the batches off the apply path (node/server/housekeeping.py).

A row is condemned by compact revision C when rev < C and it is a tombstone or some
newer row of the same key at or before C supersedes it. Rows AT C are all kept, so a
watch starting at C still sees that revision's events. Reads at or above C give the
same answers with or without the condemned rows (each key's latest row at or before
any revision >= C is never condemned), which is why the deletion can lag behind.

`kv` has no index by key (node/mvcc/schema.py); the row that supersedes a version
links to it (`prev_id`). So the condemned rows are the tombstones below C and the rows
linked from a row at or before C: a batch examines rows in revision order and deletes
the tombstones among them and the rows they link to, one primary-key probe each.
`superseded_at` gives the same verdicts to readers that walk the table (the hashes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.mvcc.schema import first_id_sql, row_id

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable

BATCH_LIMIT = 1000  # etcd's --experimental-compaction-batch-limit default
PAUSE_SECONDS = 0.01  # etcd's pause between batches (10 ms)
FINISHED_META = "finished_compact_rev"  # etcd's finishedCompactRev, in the meta table

Cursor = int  # the row id (revision, sub-revision) of the last stored revision examined
START: Cursor = -1  # before every stored revision

# Rows that condemn: every row at or before :c (their tombstone-ness or their link).
_EXAMINED = f"id > :after AND id <= :upper AND id < {first_id_sql(':c + 1')}"


def _delete(conn: sqlite3.Connection, compact_rev: int, after: int, upper: int) -> int:
    """Delete what the rows in (after, upper] (those at or before compact_rev) condemn."""
    params = {"c": compact_rev, "after": after, "upper": upper}
    linked = conn.execute(
        f"DELETE FROM kv WHERE id IN (SELECT prev_id FROM kv WHERE {_EXAMINED} AND prev_id > 0)",
        params,
    ).rowcount
    tombstones = conn.execute(
        f"DELETE FROM kv WHERE {_EXAMINED} AND id < {first_id_sql(':c')} AND version = 0",
        params,
    ).rowcount
    return max(linked, 0) + max(tombstones, 0)


def delete_all(conn: sqlite3.Connection, compact_rev: int) -> int:
    """Delete every row condemned by `compact_rev` in one go; rows removed."""
    return _delete(conn, compact_rev, START, row_id(compact_rev + 1, 0) - 1)


def delete_batch(
    conn: sqlite3.Connection, compact_rev: int, after: Cursor, limit: int
) -> tuple[int, Cursor | None]:
    """Examine the next `limit` stored revisions after `after` (up to `compact_rev`).

    Deletes the condemned ones they show; returns (rows removed, the cursor to continue
    from, or None when no stored revision at or below `compact_rev` is left). Cost is
    bounded by `limit` rows plus one primary-key probe per examined row.
    """
    bound = conn.execute(
        f"SELECT id FROM kv WHERE id > :after AND id < {first_id_sql(':c + 1')} "
        "ORDER BY id LIMIT 1 OFFSET :skip",
        {"c": compact_rev, "after": after, "skip": max(0, limit - 1)},
    ).fetchone()
    if bound is None:  # the last (short) batch: everything up to the compact revision
        return _delete(conn, compact_rev, after, row_id(compact_rev + 1, 0) - 1), None
    upper = int(bound[0])
    return _delete(conn, compact_rev, after, upper), upper


def superseded_at(rows: Iterable[tuple[int, int]], revision: int) -> set[int]:
    """Of `rows` ((id, prev_id) in any order), the ids replaced at or before `revision`.

    A version is superseded at R when the key's next row (a put or a tombstone, linking
    to it) is at or before R; the hashes ask it of rows they walk, for R = the compact
    revision (condemned) and R = the hashed revision (not the latest).
    """
    last = row_id(revision + 1, 0)
    return {prev for rid, prev in rows if prev and rid < last}
