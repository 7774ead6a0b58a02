"""KVStore: the member's state machine - committed Raft entries in, etcd responses out.

The driver calls `apply_batch` with the committed entries of one Ready. Applied
batches go into one open SQLite transaction that is committed, together with the
last applied Raft index, once it is `batch_interval` old or holds `batch_limit`
entries (etcd's backend batch: 100 ms or 10,000 by default there). So after any
crash the store sits exactly at some applied index and the driver replays the
Raft log from the entry after it: nothing is applied twice (indexes <= the
stored one are skipped) and nothing is skipped. Reads go through the same
connection, so they see applied batches before their commit, as etcd's reads see
its uncommitted batch. With `batch_interval=0` every batch commits at once. See
`node.mvcc.schema` for the durability argument (WAL mode, synchronous=NORMAL,
`checkpoint_durable` before Raft WAL segments are released).

Errors produced while applying an entry (compacted revision, unknown lease,
no space, ...) are deterministic, so every member produces the same one; they
are returned in that entry's ApplyResult and do not abort the batch.

Thread use: the driver applies and reads on the event loop thread and runs
`backup`/`checkpoint_durable`/`restore_from` in a worker thread. One lock
serializes everything that touches the main connection; `backup` and
`checkpoint_durable` use their own short-lived connections (SQLite's WAL mode
gives them a consistent snapshot) so they never block reads on the loop.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.errors import (
    ErrApplyFailed,
    ErrBackendDamaged,
    ErrCompacted,
    ErrCorrupt,
    ErrFutureRev,
    ErrLeaseExists,
    ErrLeaseNotFound,
    ErrLeaseTTLTooLarge,
    ErrNoSpace,
    ErrRetryUndecidable,
    ErrStoreClosed,
    ErrUndecodable,
    MvccError,
)
from node.fsutil import fsync_dir, fsync_file
from node.mvcc import compaction, schema
from node.mvcc import members as members_table
from node.mvcc import quota as q
from node.mvcc import requests as rq
from node.mvcc.checkpointer import BackgroundCheckpointer, checkpoint_ahead
from node.mvcc.codec import RETRY_FORMAT, decode_request, split_retry
from node.mvcc.dedup import AppliedRequests, RetryVerdict
from node.mvcc.kv import HistoryQuery, KVState, Reader, WriteTxn
from node.mvcc.observer import NULL_BACKEND_OBSERVER, BackendObserver
from node.mvcc.txn import DEFAULT_MAX_TXN_OPS, check_ops, execute, has_put, is_read_only, txn_path
from node.mvcc.watch import WatchHub

if TYPE_CHECKING:
    from node.mvcc.members import MemberRecord

log = logging.getLogger(__name__)

DEFAULT_BATCH_LIMIT = 10_000  # etcd's --backend-batch-limit default
# Free pages a defragment step gives back (4 MiB of 4 KiB pages): milliseconds of work,
# so the store is never held much longer than by one compaction batch.
DEFRAG_STEP_PAGES = 1024
MAX_LEASE_TTL = 9_000_000_000  # etcd's MaxLeaseTTL (seconds)
# etcd's minimum lease TTL is ceil(1.5 * election timeout); 2 s with etcd's
# default 100 ms heartbeat / 1 s election. The driver passes its own.
DEFAULT_MIN_LEASE_TTL = 2

_ALARM_NAMES: dict[int, str] = {rq.AlarmType.NOSPACE: "NOSPACE", rq.AlarmType.CORRUPT: "CORRUPT"}

LeaseListener = Callable[[list[tuple[int, int]], list[int]], None]


@dataclass(slots=True)
class ApplyResult:
    """The outcome of one applied entry: a response or the etcd error, never both."""

    index: int
    request_id: int
    response: Any = None
    error: MvccError | None = None
    request: Any = None  # the decoded request (None only for an undecodable entry)


@dataclass(slots=True)
class _Effects:
    """What an apply batch tells the watch hub and the lessor once it is applied.

    One per batch; an entry answered with an error leaves none (`undo_since`).
    """

    want_events: bool  # some watcher listens: write txns collect their events
    want_prev: bool  # some watcher wants prev_kv: events carry the previous version
    rev_events: list[tuple[int, list[rq.Event]]] = field(default_factory=list)
    granted: list[tuple[int, int]] = field(default_factory=list)
    revoked: list[int] = field(default_factory=list)

    def write_txn(self, reader: Reader) -> WriteTxn:
        return WriteTxn(reader, want_events=self.want_events, want_prev=self.want_prev)

    def end(self, wt: WriteTxn) -> int:
        """Close a write txn; its events are queued for the hub under its revision."""
        rev = wt.end()
        if wt.events:
            self.rev_events.append((rev, wt.events))
        return rev

    def mark(self) -> tuple[int, int, int]:
        return len(self.rev_events), len(self.granted), len(self.revoked)

    def undo_since(self, mark: tuple[int, int, int]) -> None:
        del self.rev_events[mark[0] :], self.granted[mark[1] :], self.revoked[mark[2] :]


@dataclass(slots=True)
class BackupInfo:
    path: str
    applied_index: int
    revision: int
    size: int
    seconds: float


@dataclass(slots=True)
class StoreStats:
    """Everything the exporter reads at scrape time (etcd_mvcc_* / etcd_debugging_mvcc_*)."""

    db_total_size: int
    db_in_use_size: int
    quota_bytes: int
    keys_total: int
    current_revision: int
    compact_revision: int
    applied_index: int
    put_total: int
    range_total: int
    delete_total: int
    txn_total: int
    total_put_size: int
    events_total: int
    compaction_keys_total: int
    leases: int
    watchers: int
    watch_streams: int
    slow_watchers: int
    pending_events: int


class BackendCorruptError(Exception):
    """The database file cannot be opened: the message names the file and what to do."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(
            f"backend database {path} is damaged ({cause}); this member cannot start on it. "
            "Restore the member from a backup or snapshot (etcdctl snapshot restore), or "
            "remove it from the cluster (etcdctl member remove), wipe its data dir and add "
            "it back (etcdctl member add) so the leader sends it a snapshot"
        )
        self.path = path


def _log_alarm(what: str, req: rq.AlarmRequest) -> None:
    alarm = _ALARM_NAMES.get(req.alarm, str(req.alarm))
    log.warning(what, extra={"fields": {"alarm": alarm, "from": f"{req.member_id:x}"}})


def _damaged(err: sqlite3.DatabaseError) -> bool:
    """SQLite's own verdict on the file (not a busy lock, not a full disk)."""
    return getattr(err, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class KVStore:
    """etcd's MVCC key space, leases and alarms on one SQLite database file."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        *,
        quota_bytes: int,
        max_txn_ops: int,
        min_lease_ttl: int,
        observer: BackendObserver,
        batch_interval: float = 0.0,
        batch_limit: int = DEFAULT_BATCH_LIMIT,
    ) -> None:
        self.path = path
        self.batch_interval = batch_interval
        self.batch_limit = max(1, batch_limit)
        self.quota_bytes = quota_bytes
        self.max_txn_ops = max_txn_ops
        self.min_lease_ttl = min_lease_ttl
        self.hooks = observer
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._state = KVState()
        self._applied = 0  # applied in this process, committed or still in the open batch
        self._batch_started = 0.0  # monotonic time the open batch's transaction began
        self._batch_entries = 0  # entries applied into the open batch
        # Backend commits so far: the driver re-reads the database size only after one,
        # as etcd's backend size changes only when bbolt commits.
        self.commits = 0
        self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        self._alarms: set[tuple[int, int]] = set()  # (member_id u64, type)
        self._lease_listeners: list[LeaseListener] = []
        self._reader = Reader(conn, self._state)
        self._requests = AppliedRequests()  # the ids applied lately: a retry applies once
        # Entries skipped as a second copy of an applied request (node/mvcc/dedup.py).
        self.duplicates_skipped = 0
        # Physical compaction (node/mvcc/compaction.py). False: the apply deletes the
        # condemned rows at once (pure-store tests, tools). The server sets it True and
        # runs `compact_step` batches off the apply path, as etcd's compaction goroutine.
        self.compact_in_background = False
        # Set by the server, on the loop, while a worker thread runs `defragment` (which
        # holds the lock for the whole VACUUM) or one `defrag_step`: the batch was committed
        # first and nothing is applied meanwhile, so the loop-side calls below answer
        # without the lock (commit: nothing to do; sizes: the last ones read; range: a read
        # snapshot).
        self.defragmenting = False
        self._last_pages = (self._page_size, 0, 0)
        self._last_total_size = 0  # the last db size read: answered during a VACUUM
        self._compact_done = 0  # finished_compact_rev: condemned rows below it are gone
        self._deletion: compaction.Deletion | None = None  # the pending compaction's batches
        # Held by `checkpoint_durable` (a FULL checkpoint on its own connection blocks new
        # writers for as long as it runs) and by each compaction batch, which skips its
        # turn rather than wait: a batch that waited past busy_timeout would fail.
        self._checkpoint_gate = threading.Lock()
        self._checkpointer = BackgroundCheckpointer(path)
        # Damage seen by a read (now or by a previous run, which left a mark): reads
        # then run outside the open batch (see `_reading`).
        self._damaged = os.path.exists(self._damage_mark)
        if self._damaged:
            log.warning(
                "backend database was marked damaged by a read; reads run outside the open "
                "batch (remove the mark once the file is restored)",
                extra={"fields": {"path": os.path.abspath(path), "mark": self._damage_mark}},
            )
        self._load()
        self.watch_hub = WatchHub(self)

    # ---- lifecycle -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str,
        *,
        quota_bytes: int = q.DEFAULT_QUOTA_BYTES,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
        min_lease_ttl: int = DEFAULT_MIN_LEASE_TTL,
        observer: BackendObserver = NULL_BACKEND_OBSERVER,
        batch_interval: float = 0.0,
        batch_limit: int = DEFAULT_BATCH_LIMIT,
    ) -> KVStore:
        """Open or create the database at `path` and load its applied index and revisions.

        `batch_interval` (seconds) and `batch_limit` (entries) bound how long applied
        entries may wait in the open transaction; 0 commits every `apply_batch`.
        """
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        try:
            store = cls(
                path,
                schema.connect(path),
                quota_bytes=quota_bytes or q.DEFAULT_QUOTA_BYTES,
                max_txn_ops=max_txn_ops,
                min_lease_ttl=min_lease_ttl,
                observer=observer,
                batch_interval=batch_interval,
                batch_limit=batch_limit,
            )
        except sqlite3.DatabaseError as err:
            if not _damaged(err):
                raise
            raise BackendCorruptError(os.path.abspath(path), err) from err
        with contextlib.suppress(OSError):
            if os.path.getsize(path + "-wal") > 0:
                store._checkpointer.wake()  # frames a killed process left: copy them back
        log.info(
            "opened backend",
            extra={
                "fields": {
                    "path": path,
                    "applied-index": store._applied,
                    "current-revision": store._state.current_rev,
                    "compact-revision": store._state.compact_rev,
                }
            },
        )
        return store

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            if self._conn is not None:
                self._commit_batch()
                self.watch_hub.close()
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ErrStoreClosed
        return self._conn

    def _load(self) -> None:
        """(Re)build the in-memory mirror from the database."""
        conn = self._db()
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        st = self._state
        st.current_rev = int(meta["current_rev"])
        st.compact_rev = int(meta["compact_rev"])
        self._load_key_index()
        st.keys_total = len(st.live)
        self._load_leases_and_alarms()
        self._requests.load(conn)
        self._applied = int(meta["applied_index"])
        # A store written before batched compaction has no row: its compactions ran whole.
        self._compact_done = int(meta.get(compaction.FINISHED_META, st.compact_rev))
        self._deletion = None  # a (re)loaded store starts any pending deletion over

    def _load_leases_and_alarms(self) -> None:
        conn = self._db()
        self._state.leases = dict(conn.execute("SELECT id, ttl FROM lease").fetchall())
        self._alarms = {
            (schema.to_u64(m), t) for m, t in conn.execute("SELECT member_id, type FROM alarm")
        }

    def _load_key_index(self) -> None:
        """The `live` table into memory, as the current transaction sees it.

        Why this shape: a follower that restores a leader's image waits for this (issue
        17), so each row costs one subscript and one slice: SQLite hands the key over as
        bytes (CAST, no `bytes()` call) and the entry is the row's tail. Measured at 27k /
        500k rows: 22.5 / 530 ms against 24.0 / 604 for unpacking and re-packing each
        row; the sqlite3 module's row fetch alone is 17.7 / 438 ms of that. The index is
        built whole, then swapped in: no read ever sees part of it.
        """
        cursor = self._db().execute(
            "SELECT CAST(key AS BLOB), create_rev, mod_rev, version, lease, mod_sub FROM live"
        )
        self._state.live = {row[0]: row[1:] for row in cursor}
        self._state.live_dirty = {}  # the table is what memory now holds

    @property
    def _damage_mark(self) -> str:
        return self.path + ".damaged"

    @contextlib.contextmanager
    def _reading(self, what: str, *, commit_first: bool = True) -> Iterator[None]:
        """A read that meets a damaged page answers ErrBackendDamaged, logged with the file.

        The member keeps serving every read that does not touch the damaged pages
        (etcd 3.4 on a flipped byte: bbolt has no checksums and served them all).
        NB: a read that meets a damaged page INSIDE the open batch's transaction leaves
        SQLite unable to commit that batch (every later write in it fails "malformed"):
        once damage is known (here, or from the mark a previous run left beside the
        file), reads run outside the batch, which is committed first. Before that,
        reads share the batch, as they always did: committing before every read costs
        ~13% of a put/get mix's throughput.
        """
        if self._damaged and commit_first and self._db().in_transaction:
            self._commit_batch()
        in_batch = self._db().in_transaction
        try:
            yield
        except sqlite3.DatabaseError as err:
            if not _damaged(err):
                raise
            path = os.path.abspath(self.path)
            if not self._damaged:
                self._damaged = True
                with contextlib.suppress(OSError), open(self._damage_mark, "w") as mark:
                    mark.write(f"{err}\n")
            log.error(
                "backend database is damaged; a read failed",
                extra={"fields": {"path": path, "read": what, "error": str(err)}},
            )
            if in_batch:
                log.error(
                    "backend database is damaged inside the open batch, which can no longer "
                    "be committed: the member will stop and, restarted, replay the batch "
                    "from its WAL and keep reads outside it",
                    extra={"fields": {"path": path}},
                )
            raise ErrBackendDamaged from err

    # ---- simple reads --------------------------------------------------------------------
    def applied_index(self) -> int:
        return self._applied

    def current_revision(self) -> int:
        return self._state.current_rev

    def compact_revision(self) -> int:
        return self._state.compact_rev

    def range(self, req: rq.RangeRequest) -> rq.RangeResponse:
        """A read from committed state (after ReadIndex, or serializable). Raises
        ErrCompacted / ErrFutureRev like etcd."""
        if self.defragmenting:
            return self._range_committed(req)
        with self._lock, self._reading("range"):
            self._db()
            if self._corrupt():
                raise ErrCorrupt
            return self._reader.range(req, self._state.current_rev)

    def range_snapshot(self, req: rq.RangeRequest) -> rq.RangeResponse:
        """A range from the last COMMITTED state, on a read-only connection of its own.

        Safe in a worker thread while the loop applies: SQLite's WAL gives the reader a
        snapshot, and the revisions come from that snapshot's own `meta` row, so the
        answer is consistent at its header revision. The caller commits the open batch
        first (`commit()`), so the snapshot holds every entry applied before the read.
        A 100k-key range built on the loop stalled every other client for a second.
        """
        if not self.defragmenting:
            with self._lock:
                self._db()
        return self._range_committed(req)

    def _range_committed(self, req: rq.RangeRequest) -> rq.RangeResponse:
        """`range_snapshot` without the store's lock (which a running VACUUM holds)."""
        if self._corrupt():
            raise ErrCorrupt
        with self._reading("range", commit_first=False):  # the caller committed, on the loop
            conn = sqlite3.connect(
                f"{Path(self.path).absolute().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("BEGIN")  # one snapshot for meta and rows alike
                meta = dict(
                    conn.execute(
                        "SELECT name, value FROM meta WHERE name IN ('current_rev', 'compact_rev')"
                    ).fetchall()
                )
                state = KVState(
                    current_rev=int(meta["current_rev"]), compact_rev=int(meta["compact_rev"])
                )
                resp = Reader(conn, state).range(req, state.current_rev)
            finally:
                conn.close()
        self._state.range_total += 1  # an int's += under the GIL; exactness is not needed
        return resp

    def txn_read(self, req: rq.TxnRequest) -> rq.TxnResponse:
        """A read-only txn (no put/delete anywhere) served locally, as etcd does."""
        if not is_read_only(req):
            raise ValueError("txn_read needs a read-only txn; propose the others")
        with self._lock, self._reading("txn"):
            self._db()
            cur = self._state.current_rev
            path: dict[int, bool] = {}
            txn_path(self._reader, req, cur, path)
            check_ops(self._reader, req, path, cur, self._state.leases)
            wt = WriteTxn(self._reader, want_events=False, want_prev=False)
            resp = execute(wt, req, path)
            resp.revision = cur
            self._state.txn_total += 1
            return resp

    def get(self, key: bytes) -> rq.KeyValue | None:
        """The current version of one key (tests, debugging)."""
        with self._lock, self._reading("get"):
            self._db()
            return self._reader.get(key)

    def history(self, q: HistoryQuery) -> list[rq.Event]:
        """Stored events in [start, end] on a key range (the watch hub's catch-up)."""
        with self._lock, self._reading("watch history"):
            self._db()
            return self._reader.history(q)

    # ---- leases (replicated state; deadlines live in lease.Lessor) ------------------------
    def lease_ids(self) -> list[int]:
        return sorted(self._state.leases)

    def lease_ttl(self, lease_id: int) -> int | None:
        """Granted TTL, or None for an unknown lease."""
        return self._state.leases.get(lease_id)

    def lease_keys(self, lease_id: int) -> list[bytes]:
        with self._lock:
            self._reader.sync_live()
            rows = (
                self._db()
                .execute("SELECT key FROM live WHERE lease = ? ORDER BY key", (lease_id,))
                .fetchall()
            )
        return [bytes(r[0]) for r in rows]

    def subscribe_leases(self, listener: LeaseListener) -> None:
        """Call `listener(granted [(id, ttl)], revoked [id])` after each committed batch."""
        self._lease_listeners.append(listener)

    # ---- alarms and quota --------------------------------------------------------------
    def alarms(self) -> list[tuple[int, str]]:
        """Active alarms as (member_id, "NOSPACE" | "CORRUPT"), for /health and status."""
        return [(m, _ALARM_NAMES.get(t, str(t))) for m, t in sorted(self._alarms)]

    def alarm_members(self) -> list[rq.AlarmMember]:
        return [rq.AlarmMember(m, t) for m, t in sorted(self._alarms)]

    def _corrupt(self) -> bool:
        return any(t == rq.AlarmType.CORRUPT for _, t in self._alarms)

    def _nospace(self) -> bool:
        return any(t == rq.AlarmType.NOSPACE for _, t in self._alarms)

    def check_quota(self, req: Any) -> bool:
        """etcd's backendQuota.Available: db size + the request's cost under the quota.

        False means: answer ErrNoSpace and propose AlarmRequest(ACTIVATE, NOSPACE).
        Requests the quota does not gate (range, delete, compaction, ...) pass.
        """
        if not q.gated(req):
            return True
        return self.db_total_size() + q.cost(req) < self.quota_bytes

    # ---- sizes and stats ---------------------------------------------------------------
    def _pages(self) -> tuple[int, int, int]:
        if self.defragmenting:  # a scrape must not wait for the VACUUM
            return self._last_pages
        with self._lock:
            conn = self._db()
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            page_count = conn.execute("PRAGMA page_count").fetchone()[0]
            freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        self._last_pages = (int(page_size), int(page_count), int(freelist))
        self._last_total_size = int(page_count) * int(page_size)
        return self._last_pages

    def db_total_size(self) -> int:
        """etcd_mvcc_db_total_size_in_bytes, and what the quota gates: the database's pages.

        This is the size of the file once SQLite's WAL is checkpointed into it, as etcd's
        is the size of its bbolt file: `page_count` already counts the pages that so far
        live only in the WAL, so adding the WAL file's size counted those twice (a 4 MiB
        quota raised NOSPACE after 3.4 MiB of values, at "173 %"). The WAL is a journal,
        like etcd's member/wal, and stays bounded (see checkpointer.py).
        The driver reads it after each backend commit (the quota check), so it costs one
        PRAGMA: the page size never changes.
        """
        if self.defragmenting:
            return self._last_total_size
        with self._lock:
            page_count = self._db().execute("PRAGMA page_count").fetchone()[0]
        self._last_total_size = int(page_count) * self._page_size
        return self._last_total_size

    def db_in_use_size(self) -> int:
        """etcd_mvcc_db_total_size_in_use_in_bytes: pages not on the freelist."""
        page_size, page_count, freelist = self._pages()
        return (page_count - freelist) * page_size

    def stats(self) -> StoreStats:
        page_size, page_count, freelist = self._pages()
        st = self._state
        hub = self.watch_hub.stats()
        return StoreStats(
            db_total_size=page_count * page_size,
            db_in_use_size=(page_count - freelist) * page_size,
            quota_bytes=self.quota_bytes,
            keys_total=st.keys_total,
            current_revision=st.current_rev,
            compact_revision=st.compact_rev,
            applied_index=self._applied,
            put_total=st.put_total,
            range_total=st.range_total,
            delete_total=st.delete_total,
            txn_total=st.txn_total,
            total_put_size=st.total_put_size,
            events_total=hub.events_sent,
            compaction_keys_total=st.compaction_keys_total,
            leases=len(st.leases),
            watchers=hub.watchers,
            watch_streams=hub.streams,
            slow_watchers=hub.slow_watchers,
            pending_events=hub.pending_events,
        )

    # ---- apply -----------------------------------------------------------------------------
    def apply_batch(self, entries: list[tuple[int, bytes]]) -> list[ApplyResult]:
        """Apply committed entries (index, data) into the open SQLite batch.

        Entries at or below the applied index are skipped; empty data is a
        leader's no-op (advances the applied index only), and so is a second copy of a
        request applied lately (node/mvcc/dedup.py; every entry's id is recorded).
        Returns one result per applied non-empty entry, in order. The batch is
        committed when it is due (see `commit_due`); an unexpected failure rolls back
        the whole open batch and reloads the last committed state before re-raising.
        """
        with self._lock:
            conn = self._db()
            applied = self._applied
            results: list[ApplyResult] = []
            hub = self.watch_hub
            fx = _Effects(want_events=hub.active, want_prev=hub.active and hub.wants_prev_kv)
            if not conn.in_transaction:
                conn.execute("BEGIN")
                self._batch_started = time.monotonic()
                self._batch_entries = 0
            requests = self._requests
            retried = requests.retried
            ids: list[tuple[int, int]] = []  # (index, stored request id) applied here
            retries: list[tuple[int, int]] = []  # the same, of the retries among them
            try:
                for index, data in entries:
                    if index <= applied:
                        continue
                    applied = index
                    if not data:
                        continue
                    try:
                        if data[0] == RETRY_FORMAT:
                            since, data = split_retry(data)
                            request_id, req = decode_request(data)
                            verdict = requests.judge_retry(conn, index, request_id, since, ids)
                            if verdict is RetryVerdict.DUPLICATE:
                                self.duplicates_skipped += 1
                                continue
                            if verdict is RetryVerdict.UNDECIDABLE:
                                refused = ErrRetryUndecidable()
                                results.append(ApplyResult(index, request_id, None, refused, req))
                                continue
                            retries.append((index, schema.to_i64(request_id)))
                        else:
                            request_id, req = decode_request(data)
                            if retried and requests.first_copy_is_duplicate(index, request_id):
                                self.duplicates_skipped += 1
                                continue
                    except ErrUndecodable as err:
                        log.error("undecodable entry", extra={"fields": {"index": index}})
                        results.append(ApplyResult(index, 0, None, err))
                        continue
                    if request_id:
                        ids.append((index, schema.to_i64(request_id)))
                    results.append(self._apply_entry(conn, index, request_id, req, fx))
                requests.record(conn, ids, retries)
                self._applied = applied
                self._batch_entries += len(entries)
                if self.commit_due():
                    self._commit_batch()
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._load()  # in-memory effects of the open batch are void too
                raise
        # As etcd's, watchers and the lessor hear of applied changes before the backend
        # commit: a failure after this point stops the member, and the replay on restart
        # applies the same entries to the same effect.
        if fx.rev_events:
            hub.notify(fx.rev_events, self._state.current_rev)
        if fx.granted or fx.revoked:
            for listener in self._lease_listeners:
                listener(fx.granted, fx.revoked)
        return results

    def answers_ahead(self, entries: list[tuple[int, bytes]]) -> list[ApplyResult] | None:
        """The results `apply_batch(entries)` will return, known before it runs, or None.

        Known only when every entry with data is a plain put (no lease, no prev_kv, no
        ignore flags), none is a retry or a retried request's first copy (either may be
        skipped as a duplicate: node/mvcc/dedup.py), and no alarm is raised: such a put
        cannot fail (its only possible failure is the environment's, which stops the
        member), and it gets the next
        revision, so the i-th of them gets `current_rev + i`. The Ready loop answers
        them with these before applying (node/server/apply.py); the apply then checks
        it produced exactly these.
        """
        if self._alarms or self.defragmenting:
            return None
        rev = self._state.current_rev
        applied = self._applied
        retried = self._requests.retried
        results: list[ApplyResult] = []
        for index, data in entries:
            if index <= applied or not data:
                continue
            if data[0] == RETRY_FORMAT:  # it may be skipped as a duplicate
                return None
            try:
                request_id, req = decode_request(data)
            except ErrUndecodable:
                return None
            if retried and request_id in retried:  # a first copy its retry may have beaten
                return None
            if type(req) is not rq.PutRequest or not _plain(req):
                return None
            rev += 1
            results.append(ApplyResult(index, request_id, rq.PutResponse(revision=rev), None, req))
        return results

    def commit_due(self) -> bool:
        """The open batch is old or large enough to be committed now."""
        if not self._batch_entries:
            return False
        return (
            self._batch_entries >= self.batch_limit
            or time.monotonic() - self._batch_started >= self.batch_interval
        )

    def commit(self) -> None:
        """Commit the open batch now (before a backup, a checkpoint, a shutdown)."""
        if self.defragmenting:
            return  # committed before the VACUUM began, and nothing applied since
        with self._lock:
            self._commit_batch()

    def commit_if_due(self) -> None:
        """The driver calls this on every tick, so an idle member's batch is committed too."""
        if self.defragmenting:
            return
        with self._lock:
            if self.commit_due():
                self._commit_batch()

    def _commit_batch(self) -> None:
        """Record the applied index and revisions in the open batch and commit it."""
        conn = self._db()
        if not conn.in_transaction:
            return
        st = self._state
        self._reader.sync_live()  # the key index commits with the kv rows it points at
        self._requests.prune(conn, self._applied)
        conn.executemany(
            "UPDATE meta SET value = ? WHERE name = ?",
            (
                (self._applied, "applied_index"),
                (st.current_rev, "current_rev"),
                (st.compact_rev, "compact_rev"),
            ),
        )
        started = time.perf_counter()
        conn.execute("COMMIT")
        self._batch_entries = 0
        self.hooks.on_commit(time.perf_counter() - started)
        self._committed()

    def _committed(self) -> None:
        """After any write transaction's COMMIT: the size is re-read, the WAL checkpointed."""
        self.commits += 1
        self._checkpointer.finish_on_writer(self._db())
        self._checkpointer.committed()

    def _apply_entry(
        self, conn: sqlite3.Connection, index: int, request_id: int, req: Any, fx: _Effects
    ) -> ApplyResult:
        """Apply one decoded entry so that it can only yield a response or an error.

        Apply must be total: an exception escaping here would stop the member, and the
        replay after a restart would raise it again, on every member, for good. So the
        entry runs inside its own savepoint (a put, one statement, needs none:
        `_apply_put`). etcd's own errors (`MvccError`) are raised
        before anything is written. Anything else is a bug of ours that the
        entry triggers deterministically: its writes are rolled back, the in-memory
        mirror is put back as it was before the entry, and the entry's result is
        `ErrApplyFailed` naming the exception, the same on every member. Only faults of
        the environment (I/O, a full disk, memory, a corrupt file: `_is_environmental`)
        still stop the member, because a member that cannot write must not go on and
        answer as if it had.
        """
        if type(req) is rq.PutRequest:
            return self._apply_put(index, request_id, req, fx)
        mark = fx.mark()
        before = _SCALARS(self._state)
        # The key index's pending rows first: a rollback to the savepoint then leaves the
        # `live` table as memory was before the entry, and `_restore` reloads it from there.
        self._reader.sync_live()
        conn.execute("SAVEPOINT entry")
        try:
            resp = self._apply_one(index, req, fx)
        except MvccError as err:
            conn.execute("ROLLBACK TO entry")  # nothing was written; cheap insurance
            conn.execute("RELEASE entry")
            if self._state.live_dirty:  # something was written after all: memory follows
                self._load_key_index()
            return ApplyResult(index, request_id, None, err, req)
        except Exception as err:
            if _is_environmental(err):
                raise
            conn.execute("ROLLBACK TO entry")
            conn.execute("RELEASE entry")
            self._restore(before)
            fx.undo_since(mark)
            return self._failed(index, request_id, req, err)
        conn.execute("RELEASE entry")
        return ApplyResult(index, request_id, resp, None, req)

    def _apply_put(
        self, index: int, request_id: int, req: rq.PutRequest, fx: _Effects
    ) -> ApplyResult:
        """A put without a savepoint (two statements fewer on every put's path): its only
        write is the kv row's INSERT, the last step of `WriteTxn.put` that can fail, and a
        failed statement changes nothing; the key index changes in memory after it."""
        try:
            resp = self._put(req, fx)
        except MvccError as err:
            return ApplyResult(index, request_id, None, err, req)
        except Exception as err:
            if _is_environmental(err):
                raise
            return self._failed(index, request_id, req, err)
        return ApplyResult(index, request_id, resp, None, req)

    def _failed(self, index: int, request_id: int, req: Any, err: Exception) -> ApplyResult:
        """The answer to an entry whose apply met a bug of ours (rolled back by then)."""
        log.error(
            "apply of a committed entry failed; answered as an error, changes rolled back",
            exc_info=err,
            extra={"fields": {"index": index, "request": type(req).__name__}},
        )
        failed = ErrApplyFailed(f"{ErrApplyFailed.message}: {type(err).__name__}: {err}")
        return ApplyResult(index, request_id, None, failed, req)

    def _restore(self, scalars: tuple[int, ...]) -> None:
        """Put the in-memory mirror back as the rolled-back transaction sees the db."""
        st = self._state
        for name, value in zip(_SCALAR_FIELDS, scalars, strict=True):
            setattr(st, name, value)
        self._load_key_index()
        self._load_leases_and_alarms()

    def _put(self, req: rq.PutRequest, fx: _Effects) -> rq.PutResponse:
        if self._alarms:
            self._refuse_under_alarm(rq.PutRequest, req)
        wt = fx.write_txn(self._reader)
        resp = wt.put(req)
        resp.revision = fx.end(wt)
        return resp

    def _refuse_under_alarm(self, cls: type, req: Any) -> None:
        """etcd's applierV3Corrupt / applierV3Capped, which wrap the backend applier."""
        if self._corrupt() and cls is not rq.LeaseKeepAliveRequest:
            raise ErrCorrupt
        if self._nospace() and (
            cls is rq.PutRequest
            or cls is rq.LeaseGrantRequest
            or (cls is rq.TxnRequest and has_put(req))
        ):
            raise ErrNoSpace

    def _apply_one(self, index: int, req: Any, fx: _Effects) -> Any:
        """Every request but a put (`_put`), in etcd's applier order."""
        cls = type(req)
        if cls is rq.AlarmRequest:
            return self._apply_alarm(req)
        if cls is rq.MemberAttrRequest:
            return self._apply_member_attr(req)
        if self._alarms:
            self._refuse_under_alarm(cls, req)
        st = self._state
        resp: Any
        if cls is rq.DeleteRangeRequest:
            wt = fx.write_txn(self._reader)
            resp = wt.delete_range(req)
            resp.revision = fx.end(wt)
            return resp
        if cls is rq.TxnRequest:
            return self._apply_txn(req, fx)
        if cls is rq.RangeRequest:
            return self._reader.range(req, st.current_rev)
        if cls is rq.CompactionRequest:
            return self._apply_compaction(req)
        if cls is rq.LeaseGrantRequest:
            return self._apply_lease_grant(index, req, fx.granted)
        if cls is rq.LeaseRevokeRequest:
            if req.id not in st.leases:
                raise ErrLeaseNotFound
            wt = fx.write_txn(self._reader)
            wt.delete_keys(self.lease_keys(req.id))
            self._db().execute("DELETE FROM lease WHERE id = ?", (req.id,))
            del st.leases[req.id]
            fx.revoked.append(req.id)
            return rq.LeaseRevokeResponse(revision=fx.end(wt))
        raise ErrUndecodable(f"raftmon: not a replicated request: {cls.__name__}")

    def _apply_txn(self, req: rq.TxnRequest, fx: _Effects) -> rq.TxnResponse:
        st = self._state
        cur = st.current_rev
        path: dict[int, bool] = {}
        txn_path(self._reader, req, cur, path)
        check_ops(self._reader, req, path, cur, st.leases)
        conn = self._db()
        # The checks above make failure here a bug, but a savepoint keeps a
        # half-applied txn out of the database even then.
        conn.execute("SAVEPOINT txn")
        counters = (st.put_total, st.range_total, st.delete_total, st.total_put_size)
        try:
            wt = fx.write_txn(self._reader)
            resp = execute(wt, req, path)
        except BaseException:
            conn.execute("ROLLBACK TO txn")
            conn.execute("RELEASE txn")
            st.put_total, st.range_total, st.delete_total, st.total_put_size = counters
            self._load_key_index()  # it had seen the rolled-back changes too
            raise
        conn.execute("RELEASE txn")
        resp.revision = fx.end(wt)
        st.txn_total += 1
        return resp

    def _apply_compaction(self, req: rq.CompactionRequest) -> rq.CompactionResponse:
        """Keep, for every key, its latest version at or before `revision`; drop the rest.

        Tombstones below the compact revision go too (a key deleted before it is
        simply absent). Rows AT the compact revision are all kept, so a watch
        starting at the compact revision still sees that revision's events.
        """
        st = self._state
        rev = req.revision
        if rev == 0 == st.compact_rev:
            # etcd's compactMainRev starts at -1, so compacting revision 0 of a store never
            # compacted succeeds there (3.4.23 answers 200); there is nothing to remove.
            return rq.CompactionResponse(revision=st.current_rev)
        if rev <= st.compact_rev:
            raise ErrCompacted
        if rev > st.current_rev:
            raise ErrFutureRev
        st.compact_rev = rev
        if self.compact_in_background:
            # Recorded in this entry's batch (meta.compact_rev): reads below `rev` answer
            # ErrCompacted from now on, on every member; the rows go in `compact_step`.
            # The finished row must exist from now on: a store without it counts as done.
            self._finish_compaction(self._compact_done)
            log.info("scheduled compaction", extra={"fields": {"compact-revision": rev}})
            return rq.CompactionResponse(revision=st.current_rev)
        started = time.perf_counter()
        removed = compaction.delete_all(self._db(), rev)
        self._finish_compaction(rev)
        st.compaction_keys_total += removed
        self.hooks.on_compaction(time.perf_counter() - started, removed)
        log.info(
            "finished scheduled compaction",
            extra={"fields": {"compact-revision": rev, "removed": removed}},
        )
        return rq.CompactionResponse(revision=st.current_rev)

    def _finish_compaction(self, rev: int) -> None:
        """Record (in the open transaction) that no row condemned by `rev` is left."""
        self._db().execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
            (compaction.FINISHED_META, rev),
        )
        self._compact_done = rev

    # ---- physical compaction in batches ----------------------------------------------------
    def compaction_pending(self) -> bool:
        """A compaction was applied whose condemned rows are not all deleted yet."""
        return self._conn is not None and self._compact_done < self._state.compact_rev

    def compact_step(self, limit: int = compaction.BATCH_LIMIT) -> bool:
        """Delete one batch of the pending compaction and commit; True once none is pending.

        Holds the store's lock for one batch only (at most `limit` stored revisions
        examined), so the caller can let the loop run between batches. The open apply
        batch is committed with it, as etcd's ForceCommit after each compaction batch.
        """
        if not self._checkpoint_gate.acquire(blocking=False):
            return not self.compaction_pending()  # a snapshot's checkpoint runs: next turn
        try:
            return self._compact_batch(limit)
        finally:
            self._checkpoint_gate.release()

    def _compact_batch(self, limit: int) -> bool:
        with self._lock:
            conn = self._db()
            target = self._state.compact_rev
            if self._compact_done >= target:
                return True
            now = time.perf_counter()
            job = self._deletion
            if job is None or job.compact_rev != target:  # new: start from the oldest row
                job = self._deletion = compaction.Deletion(target, started=now)
            if not conn.in_transaction:
                conn.execute("BEGIN")
            removed, done = job.step(conn, self._state.live, limit)
            self._state.compaction_keys_total += removed
            if done:
                self._finish_compaction(target)
                self._deletion = None
            self._commit_batch()
            self.hooks.on_compaction_pause(time.perf_counter() - now)
            if not done:
                return False
            total = time.perf_counter() - job.started
            removed_total = job.removed
        self.hooks.on_compaction(total, removed_total, batched=True)
        log.info(
            "finished scheduled compaction",
            extra={
                "fields": {
                    "compact-revision": target,
                    "removed": removed_total,
                    "took": f"{total:.3f}s",
                }
            },
        )
        return True

    def _apply_lease_grant(
        self, index: int, req: rq.LeaseGrantRequest, granted: list[tuple[int, int]]
    ) -> rq.LeaseGrantResponse:
        st = self._state
        lease_id = req.id
        if lease_id == 0:
            # The proposer should choose (lease.LeaseIDGenerator); if it did not,
            # derive one from the entry index so every member picks the same.
            lease_id = (index * 0x9E3779B97F4A7C15) & 0x7FFF_FFFF_FFFF_FFFF or 1
            while lease_id in st.leases:
                lease_id = (lease_id + 1) & 0x7FFF_FFFF_FFFF_FFFF or 1
        if lease_id in st.leases:
            raise ErrLeaseExists
        if req.ttl > MAX_LEASE_TTL:
            raise ErrLeaseTTLTooLarge
        ttl = max(req.ttl, self.min_lease_ttl)
        self._db().execute("INSERT INTO lease (id, ttl) VALUES (?, ?)", (lease_id, ttl))
        st.leases[lease_id] = ttl
        granted.append((lease_id, ttl))
        return rq.LeaseGrantResponse(revision=st.current_rev, id=lease_id, ttl=ttl)

    def _apply_alarm(self, req: rq.AlarmRequest) -> rq.AlarmResponse:
        """etcd's Alarm apply: GET lists, ACTIVATE/DEACTIVATE answer the member changed."""
        resp = rq.AlarmResponse(revision=self._state.current_rev)
        member = (req.member_id, int(req.alarm))
        conn = self._db()
        row = (schema.to_i64(req.member_id), int(req.alarm))
        if req.action == rq.AlarmAction.GET:
            resp.alarms = [
                m for m in self.alarm_members() if req.alarm in (rq.AlarmType.NONE, m.alarm)
            ]
        elif req.action == rq.AlarmAction.ACTIVATE:
            if req.alarm == rq.AlarmType.NONE:
                return resp
            if member not in self._alarms:
                conn.execute("INSERT OR IGNORE INTO alarm (member_id, type) VALUES (?, ?)", row)
                self._alarms.add(member)
                _log_alarm("alarm raised", req)
            resp.alarms = [rq.AlarmMember(req.member_id, int(req.alarm))]
        elif req.action == rq.AlarmAction.DEACTIVATE:
            if member in self._alarms:
                conn.execute("DELETE FROM alarm WHERE member_id = ? AND type = ?", row)
                self._alarms.discard(member)
                _log_alarm("alarm disarmed", req)
                resp.alarms = [rq.AlarmMember(req.member_id, int(req.alarm))]
        return resp

    # ---- membership ----------------------------------------------------------------------
    def members(self) -> list[MemberRecord]:
        """The cluster's members as applied so far (the open batch included)."""
        with self._lock:
            return members_table.load_members(self._db())

    def removed_member_ids(self) -> set[int]:
        with self._lock:
            return members_table.load_removed(self._db())

    def apply_member_change(
        self, index: int, *, save: MemberRecord | None = None, remove: int = 0
    ) -> None:
        """Apply a conf-change entry at `index`: save a member (added, promoted, updated)
        or remove one, in the open batch with the applied index (a replayed entry at or
        below the applied index changes nothing)."""
        with self._lock:
            conn = self._db()
            if index <= self._applied:
                return
            if not conn.in_transaction:
                conn.execute("BEGIN")
                self._batch_started = time.monotonic()
                self._batch_entries = 0
            if save is not None:
                members_table.save_member(conn, save)
            if remove:
                members_table.remove_member(conn, remove)
            self._applied = index
            self._batch_entries += 1
            if self.commit_due():
                self._commit_batch()

    def seed_members(self, records: list[MemberRecord]) -> None:
        """Fill an empty member table from the initial cluster, outside any entry: a data
        dir written before membership was replicated state."""
        with self._lock:
            self._commit_batch()
            conn = self._db()
            conn.execute("BEGIN")
            for record in records:
                members_table.save_member(conn, record)
            conn.execute("COMMIT")

    def _apply_member_attr(self, req: rq.MemberAttrRequest) -> rq.MemberAttrResponse:
        """A member's published name and client URLs; ignored for an unknown member."""
        conn = self._db()
        for member in members_table.load_members(conn):
            if member.id == req.member_id:
                urls = tuple(u for u in req.client_urls.decode().split(",") if u)
                members_table.save_member(conn, member.with_attributes(req.name.decode(), urls))
        return rq.MemberAttrResponse(revision=self._state.current_rev)

    # ---- maintenance -----------------------------------------------------------------------
    def defragment(self) -> float:
        """VACUUM (etcd's defrag): rebuild the file without free pages; returns seconds.

        Holds the store for the whole rewrite: the server uses it only for a file made
        before free pages could be given back in steps (`defrag_in_steps`), which this
        VACUUM converts, so that member's next defragments take the short steps.
        VACUUM in WAL mode writes the new image through SQLite's WAL, so a
        TRUNCATE checkpoint follows to give the space back to the filesystem.
        """
        # The background checkpoint waits: SQLite runs one checkpoint at a time, and a
        # TRUNCATE that found it running would leave the VACUUM's WAL on disk.
        with self._lock, self._checkpointer.paused():
            conn = self._db()
            self._commit_batch()  # VACUUM cannot run inside a transaction
            started = time.perf_counter()
            conn.execute(f"PRAGMA auto_vacuum={schema.AUTO_VACUUM_INCREMENTAL}")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            took = time.perf_counter() - started
        self._defragmented(took)
        return took

    @property
    def defrag_in_steps(self) -> bool:
        """The file gives free pages back in steps (auto_vacuum=INCREMENTAL)."""
        with self._lock:
            mode = self._db().execute("PRAGMA auto_vacuum").fetchone()[0]
        return int(mode) == schema.AUTO_VACUUM_INCREMENTAL

    def defrag_step(self, pages: int = DEFRAG_STEP_PAGES) -> int | None:
        """Give up to `pages` free pages back to the filesystem and commit; free pages left.

        SQLite's incremental vacuum moves pages from the end of the file into free
        slots and truncates it: one short write transaction, after which applies and
        compaction batches run as usual, so a put to a member that defragments waits for
        one step, not for a rewrite of the whole file (etcd's defrag blocks its backend
        for all of it). None: a snapshot's FULL checkpoint holds the writers; try later.
        """
        if not self._checkpoint_gate.acquire(blocking=False):
            return None
        try:
            with self._lock:
                conn = self._db()
                self._commit_batch()  # the open batch first, with its applied index
                # executescript steps the pragma to its end (execute stops after 1 page).
                try:
                    conn.executescript(f"BEGIN; PRAGMA incremental_vacuum({int(pages)}); COMMIT;")
                except sqlite3.Error:
                    if conn.in_transaction:  # never left open for the next apply batch
                        conn.execute("ROLLBACK")
                    raise
                self._committed()
                return int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        finally:
            self._checkpoint_gate.release()

    def finish_defrag(self, seconds: float) -> None:
        """After the last step: copy SQLite's WAL back (the file shrinks), report `seconds`."""
        with self._checkpoint_gate, self._checkpointer.paused():
            checkpoint_ahead(self.path)
        self._defragmented(seconds)

    def _defragmented(self, took: float) -> None:
        self.hooks.on_defrag(took)
        log.info(
            "finished defragmenting directory",
            extra={"fields": {"path": self.path, "took": f"{took:.3f}s"}},
        )

    def checkpoint_durable(self) -> None:
        """Make every committed batch durable in the database file (fsynced).

        A FULL checkpoint fsyncs SQLite's WAL, copies it into the database and
        fsyncs the database. The driver calls this before releasing Raft WAL
        segments, after `commit()`: then entries up to applied_index() are needed
        nowhere else. (It waits for an open batch's commit: call `commit()` first.)
        """
        with self._checkpoint_gate, self._checkpointer.paused():  # one checkpoint at a time
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout=10000")
                busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
            finally:
                conn.close()
        if busy:
            raise RuntimeError(f"checkpoint of {self.path} did not complete (database busy)")

    def checkpoint_ahead(self) -> None:
        """Most of `checkpoint_durable`'s copying and flushing, without holding writers
        (checkpointer.checkpoint_ahead); a snapshot runs it first, in a worker thread."""
        with self._checkpoint_gate, self._checkpointer.paused():  # one checkpoint at a time
            checkpoint_ahead(self.path)

    def backup(self, path: str, *, durable: bool = True) -> BackupInfo:
        """Write a consistent copy of the database to `path` (SQLite backup API).

        The copy holds committed batches only: call `commit()` first for an image at
        applied_index().

        Used as the member's snapshot image and as the image streamed to a
        lagging follower. Reads through its own connection, so the event loop
        keeps serving while this runs in a worker thread. The copy is written
        to a temporary file and renamed, so `path` is never partial; `durable`
        fsyncs both first. An image that only travels (to a follower, whose copy is
        the durable one, or to a client) and is deleted after, needs no fsync: at 51 MB
        it took 75-130 ms with them and 41-44 ms without, and the fsync's writes
        compete with the leader's WAL fsyncs for the disk.
        """
        started = time.perf_counter()
        tmp = path + ".partial"
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        src = sqlite3.connect(self.path, isolation_level=None)
        try:
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                if not durable:  # no journal and no sync of the copy's own writes
                    dst.execute("PRAGMA synchronous=OFF")
                    dst.execute("PRAGMA journal_mode=OFF")
                src.backup(dst)
                meta = dict(dst.execute("SELECT name, value FROM meta").fetchall())
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(os.path.dirname(os.path.abspath(path)))
        took = time.perf_counter() - started
        self.hooks.on_backend_snapshot(took)
        return BackupInfo(
            path=path,
            applied_index=int(meta["applied_index"]),
            revision=int(meta["current_rev"]),
            size=os.path.getsize(path),
            seconds=took,
        )

    def restore_from(self, path: str, *, move: bool = False) -> None:
        """Replace the whole store with a backup image (a snapshot from the leader).

        The applied index, revisions, leases and alarms come from the image.
        Watchers stay registered and resynchronize from the new history (or get
        a compacted response if it no longer reaches back far enough). With `move`
        the image file itself becomes the database (renamed, not copied: it must be
        durable already and on this filesystem), so no second copy is ever written.
        """
        with self._lock:
            if self._conn is not None:
                self._conn.close()  # an open batch is rolled back: the image replaces it
                self._conn = None
                self._batch_entries = 0
            if move:
                src = path
            else:
                import shutil  # here: a rare path, and its import cost every start ~5 ms

                src = self.path + ".restore"
                shutil.copyfile(path, src)
                fsync_file(src)
            with self._checkpointer.paused():  # no checkpoint has the files open
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path + suffix)
                old = _hold(self.path)
                os.replace(src, self.path)
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            _release_later(old)
            self._conn = schema.connect(self.path)
            self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            self._reader = Reader(self._conn, self._state)
            self._load()
        self.watch_hub.on_restore()
        log.info(
            "restored backend from snapshot image",
            extra={
                "fields": {
                    "applied-index": self._applied,
                    "current-revision": self._state.current_rev,
                }
            },
        )


def _hold(path: str) -> int | None:
    """A descriptor on the file at `path` (None: there is none), so replacing it does not
    free its blocks inside the rename (~9 ms for a 35 MB database on the shared box)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _release_later(fd: int | None) -> None:
    """Close a `_hold` descriptor in a thread of its own: the replaced file's blocks are
    freed there, off a snapshot install's path (the file has no name left to reopen)."""
    if fd is not None:
        threading.Thread(target=os.close, args=(fd,), name="free-replaced-db", daemon=True).start()


# KVState's plain counters and revisions: saved before each entry, put back if it fails.
_SCALAR_FIELDS = (
    "current_rev",
    "compact_rev",
    "keys_total",
    "put_total",
    "range_total",
    "delete_total",
    "txn_total",
    "total_put_size",
    "compaction_keys_total",
)
_SCALARS = operator.attrgetter(*_SCALAR_FIELDS)


def _plain(req: rq.PutRequest) -> bool:
    """A put whose result is its revision alone: no lease to find, no previous value."""
    return not (req.lease or req.prev_kv or req.ignore_value or req.ignore_lease)


def _is_environmental(err: Exception) -> bool:
    """A fault of the machine, not of the entry: the member must stop, not answer.

    OperationalError is SQLite's I/O error, full disk, locked or read-only database;
    a bare DatabaseError is a malformed file; ProgrammingError a closed connection.
    Applying the entry again elsewhere (or after a restart) would succeed, so
    answering an error here would make this member diverge from the others.
    """
    return (
        isinstance(
            err,
            (OSError, MemoryError, sqlite3.OperationalError, sqlite3.ProgrammingError),
        )
        or type(err) is sqlite3.DatabaseError
        or isinstance(err, ErrStoreClosed)
    )
