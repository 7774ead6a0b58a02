"""The request ids applied lately, so that a proposal sent twice is applied once.

A follower forwards its clients' proposals to the leader. When that leader dies before
replicating them they are lost, and each client waits out its request timeout (etcd
loses them the same way: issue 17's faulted run). So a proposer sends again what it
still waits for once a new leader is known (node/server/proposals.py). It cannot know
whether the first copy was lost: the dead leader may have replicated it to the member
that leads now, and a forwarded proposal can be forwarded on. The apply decides, the
same way on every member:

- Every applied entry's request id is recorded with its index (table `request_ids`),
  in the apply's own transaction: the record moves with the applied index, survives a
  crash exactly as the entries do, and travels inside every snapshot image, so a member
  restored from one skips what the others skip.
- A copy sent again (a "retry", codec.encode_retry) names `since`: the proposer's
  applied index when it first handed the request to its core. The first copy, if it is
  ever committed, is committed above that index: every index up to it already holds a
  committed entry, and a log never commits a second one there. So the retry at index I
  is a duplicate exactly when its id was applied in (since, I): it is skipped (the
  applied index moves, nothing else, and no one is answered: the first copy's apply
  answered the client).
- An applied retry's id is kept too (table `retried_ids`): should the first copy be
  committed after it, that copy is the duplicate.
- Only the last WINDOW indexes count, on every member alike (the tables may hold older
  rows until they are pruned; the comparisons ignore them). A retry whose `since` is
  older than the window cannot be decided and is refused (answered with a timeout,
  applied nowhere). A proposer sends again within its request timeout (seconds), far
  inside the window.

The cost on every put is one row appended to a rowid table ordered by index (a B-tree
append, written by one executemany per apply batch); lookups by id happen only for
retries, which are rare, and for the first copies of retried ids (an in-memory dict).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from node.mvcc import schema

if TYPE_CHECKING:
    import sqlite3

TABLES = ("request_ids", "retried_ids")  # Raft bookkeeping, not the key space's content

# Indexes back from the entry being applied that a duplicate is looked for in. At 10k
# entries/s (above what a member applies) it covers 10 s, above the request timeout.
WINDOW = 100_000
# Rows this far below the window are deleted in one statement at a backend commit.
PRUNE_STEP = 5_000


class RetryVerdict(enum.Enum):
    APPLY = "apply"  # the first copy was not applied: this one is applied instead
    DUPLICATE = "duplicate"  # the first copy (or an earlier retry) was applied: skip
    UNDECIDABLE = "undecidable"  # its first copy is older than the window: refuse


class AppliedRequests:
    """The window of applied request ids of one store (tables `request_ids`, `retried_ids`)."""

    def __init__(self) -> None:
        # Ids whose retry was applied -> that retry's index (the whole table, kept small:
        # only retries land here). Checked against every entry's id.
        self.retried: dict[int, int] = {}
        self._pruned_below = 0  # rows under this index are gone (or never were)

    def load(self, conn: sqlite3.Connection) -> None:
        """Read the retried ids of the database (at open, after a rollback or a restore)."""
        self.retried = {
            schema.to_u64(rid): idx for rid, idx in conn.execute("SELECT id, idx FROM retried_ids")
        }
        self._pruned_below = 0

    def first_copy_is_duplicate(self, index: int, request_id: int) -> bool:
        """An entry at `index` whose id was applied by a retry inside the window."""
        at = self.retried.get(request_id)
        return at is not None and index - WINDOW < at < index

    def judge_retry(
        self,
        conn: sqlite3.Connection,
        index: int,
        request_id: int,
        since: int,
        batch: list[tuple[int, int]],
    ) -> RetryVerdict:
        """Whether the retry of `request_id` at `index` is applied, skipped or refused.

        `batch` holds the (index, stored id) pairs applied earlier in the same call,
        not yet written to the table.
        """
        if since <= index - WINDOW or since >= index:
            return RetryVerdict.UNDECIDABLE
        stored = schema.to_i64(request_id)
        for idx, rid in reversed(batch):
            if idx <= since:
                break
            if rid == stored:
                return RetryVerdict.DUPLICATE
        row = conn.execute(
            "SELECT 1 FROM request_ids WHERE idx > ? AND idx < ? AND id = ? LIMIT 1",
            (since, index, stored),
        ).fetchone()
        return RetryVerdict.DUPLICATE if row is not None else RetryVerdict.APPLY

    def record(
        self,
        conn: sqlite3.Connection,
        applied: list[tuple[int, int]],
        retried: list[tuple[int, int]],
    ) -> None:
        """Write one apply call's (index, stored id) pairs, inside its transaction."""
        if applied:
            conn.executemany("INSERT OR REPLACE INTO request_ids (idx, id) VALUES (?, ?)", applied)
        if retried:
            conn.executemany("INSERT OR REPLACE INTO retried_ids (idx, id) VALUES (?, ?)", retried)
            for idx, rid in retried:
                self.retried[schema.to_u64(rid)] = idx

    def prune(self, conn: sqlite3.Connection, applied_index: int) -> None:
        """Delete the rows the window left behind, in steps of PRUNE_STEP (at a commit)."""
        floor = applied_index - WINDOW
        if floor - self._pruned_below < PRUNE_STEP:
            return
        conn.execute("DELETE FROM request_ids WHERE idx <= ?", (floor,))
        if self.retried:
            conn.execute("DELETE FROM retried_ids WHERE idx <= ?", (floor,))
            self.retried = {rid: idx for rid, idx in self.retried.items() if idx > floor}
        self._pruned_below = floor
