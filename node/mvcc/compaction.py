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
linked from a row at or before C (`delete_all`, one statement). `superseded_at` gives the
same verdicts to readers that walk the table (the hashes).

The batches (`Deletion`) walk the condemned rows' own order instead: each batch takes the
next `limit` rows below C and deletes those of them that are condemned, as runs of
consecutive ids. A row below C is kept only when it is its key's latest at or before C:
a put that is still live (the in-memory `live` index), or one whose next version came
after C (a row after C links to it: `Deletion.kept`, read from the rows after C, which a
compaction never deletes). Deleting by links instead (what each row examined condemns)
deleted rows scattered over the history: a key's previous version lies about one key
space of writes back, so each page of old rows was rewritten by several batches before
it was empty, and every rewrite went through SQLite's WAL and its checkpoint. At 100k
keys of 1 KiB one compaction of 1.34M rows took 93 s and held puts at about a third
of their rate. In table order an old page's rows go in one batch, and a page left empty
is freed rather than written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.mvcc.schema import first_id_sql, row_id

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Mapping

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


# Rows after the compact revision read into `Deletion.kept` per batch, at most this many
# times `limit`: they are bounded by the retention, but a batch holds the store's lock.
KEPT_SCAN_FACTOR = 10

# (create_rev, mod_rev, version, lease, mod_sub) of a live key, as KVState.live holds it
LiveRow = tuple[int, int, int, int, int]


@dataclass(slots=True)
class Deletion:
    """One compaction's deletion, in batches of rows in the table's order (module docstring).

    Restarted from the oldest row (a new Deletion) when the store is reopened or a newer
    compaction is applied; deleting is idempotent, so a half-done pass costs only time.
    """

    compact_rev: int
    started: float = 0.0
    removed: int = 0
    cursor: Cursor = START  # the last row below the compact revision examined
    # ids of rows at or below the compact revision that a row after it links to
    kept: set[int] = field(default_factory=set)
    scanned: int = -1  # the last row after the compact revision read into `kept`

    def __post_init__(self) -> None:
        self.scanned = row_id(self.compact_rev + 1, 0) - 1

    def step(
        self, conn: sqlite3.Connection, live: Mapping[bytes, LiveRow], limit: int
    ) -> tuple[int, bool]:
        """One batch: (rows removed, whether no condemned row is left).

        First the rows written after the compact revision since the last batch are read
        for their links; while more than `KEPT_SCAN_FACTOR * limit` of them are unread,
        that is the whole batch. Then the next `limit` rows below the compact revision
        are examined and the condemned among them deleted. Runs in the caller's
        transaction, with the store's lock held (`live` must not change meanwhile).
        """
        if not self._read_links(conn, KEPT_SCAN_FACTOR * limit):
            return 0, False
        below = row_id(self.compact_rev, 0)
        window = conn.execute(
            "SELECT id, key, version FROM kv WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
            (self.cursor, below, limit),
        ).fetchall()
        runs: list[tuple[int, int]] = []  # (first, last) ids of consecutive condemned rows
        first = previous = 0  # no row id is 0 (revisions start at 1)
        for rid, key, version in window:
            if version and (rid in self.kept or _is_live(live.get(key), rid)):
                if first:
                    runs.append((first, previous))
                    first = 0
                continue
            if not first:
                first = rid
            previous = rid
        if first:
            runs.append((first, previous))
        removed = 0
        if runs:
            removed = max(
                conn.executemany("DELETE FROM kv WHERE id >= ? AND id <= ?", runs).rowcount, 0
            )
        self.removed += removed
        if window:
            self.cursor = window[-1][0]
        return removed, len(window) < limit

    def _read_links(self, conn: sqlite3.Connection, most: int) -> bool:
        """Read the links of up to `most` unread rows after the compact revision into
        `kept`; True when none is left unread."""
        below = row_id(self.compact_rev, 0)
        rows = conn.execute(
            "SELECT id, prev_id FROM kv WHERE id > ? ORDER BY id LIMIT ?", (self.scanned, most)
        ).fetchall()
        kept = self.kept
        for _, prev in rows:
            if 0 < prev < below:
                kept.add(prev)
        if rows:
            self.scanned = rows[-1][0]
        return len(rows) < most


def _is_live(row: LiveRow | None, rid: int) -> bool:
    """`rid` is the kv row of the key's live version."""
    return row is not None and row_id(row[1], row[4]) == rid


def superseded_at(rows: Iterable[tuple[int, int]], revision: int) -> set[int]:
    """Of `rows` ((id, prev_id) in any order), the ids replaced at or before `revision`.

    A version is superseded at R when the key's next row (a put or a tombstone, linking
    to it) is at or before R; the hashes ask it of rows they walk, for R = the compact
    revision (condemned) and R = the hashed revision (not the latest).
    """
    last = row_id(revision + 1, 0)
    return {prev for rid, prev in rows if prev and rid < last}
