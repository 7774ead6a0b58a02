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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.mvcc.schema import first_id_sql, row_id

if TYPE_CHECKING:
    import sqlite3

BATCH_LIMIT = 1000  # etcd's --experimental-compaction-batch-limit default
PAUSE_SECONDS = 0.01  # etcd's pause between batches (10 ms)
FINISHED_META = "finished_compact_rev"  # etcd's finishedCompactRev, in the meta table

# The condemned rows of `kv` for compact revision :c (SQL on a table aliased `kv`). Row ids
# order revisions (node/mvcc/schema.py), and a key has at most one row per revision, so
# "a newer row of the key at or before C" is a row of the key with a larger id below C+1.
CONDEMNED = (
    f"(kv.id < {first_id_sql(':c')} AND (kv.version = 0 OR EXISTS ("
    "SELECT 1 FROM kv AS n WHERE n.key = kv.key AND n.id > kv.id "
    f"AND n.id < {first_id_sql(':c + 1')})))"
)

Cursor = int  # the row id (revision, sub-revision) of the last stored revision examined
START: Cursor = -1  # before every stored revision


def delete_all(conn: sqlite3.Connection, compact_rev: int) -> int:
    """Delete every row condemned by `compact_rev` in one statement; rows removed."""
    cur = conn.execute(f"DELETE FROM kv WHERE {CONDEMNED}", {"c": compact_rev})
    return max(cur.rowcount, 0)


def delete_batch(
    conn: sqlite3.Connection, compact_rev: int, after: Cursor, limit: int
) -> tuple[int, Cursor | None]:
    """Examine the next `limit` stored revisions after `after` (up to `compact_rev`).

    Deletes the condemned ones among them; returns (rows removed, the cursor to
    continue from, or None when no stored revision below `compact_rev` is left).
    Cost is bounded by `limit` rows plus one index probe per examined row.
    """
    params = {"c": compact_rev, "after": after}
    bound = conn.execute(
        f"SELECT id FROM kv WHERE id > :after AND id < {first_id_sql(':c')} "
        "ORDER BY id LIMIT 1 OFFSET :skip",
        {**params, "skip": max(0, limit - 1)},
    ).fetchone()
    if bound is None:  # the last (short) batch: everything below the compact revision
        upper: Cursor = row_id(compact_rev, 0) - 1
        done = True
    else:
        upper = int(bound[0])
        done = False
    cur = conn.execute(
        f"DELETE FROM kv WHERE id > :after AND id <= :upper AND {CONDEMNED}",
        {**params, "upper": upper},
    )
    return max(cur.rowcount, 0), None if done else upper
