"""The SQLite layout of the MVCC store, and how a connection is opened.

Tables
------
kv     every version of every key: one row per (revision, sub-revision), the
       "history" etcd keeps in bbolt's key bucket. A tombstone (delete) is a row
       with version 0 and value NULL. Indexed by (key, rev) for reads at a past
       revision and by its primary key (rev, sub) for watch replay and compaction.
live   the current version of every existing key, pointing at its kv row
       (mod_rev); etcd keeps this in memory (the treeIndex). We keep it on disk for
       range reads and load it into memory at open (KVState.live), so a put needs
       no lookup. The `lease` column doubles as the lease -> keys attachment
       (partial index live_lease).
lease  granted leases (id, ttl) - replicated state, as etcd's lease bucket.
alarm  active alarms (member_id, type) - replicated state, as etcd's alarm bucket.
meta   applied_index, current_rev, compact_rev: written in the same transaction
       as the entries they describe.
member the cluster's members (id, JSON attributes) and member_removed the ids
       removed for good - replicated state, as etcd's members buckets
       (node/mvcc/members.py).

Durability
----------
journal_mode=WAL with synchronous=NORMAL: a commit appends to SQLite's WAL
without fsync, so a power loss may drop the last committed transactions, but
never corrupts the file. That is safe here because the Raft WAL (node/wal) has
already fsynced every entry before it is applied, and `meta.applied_index` moves
in the same SQLite transaction as the entries' effects: after a crash the store
is at some earlier applied index and the driver replays the Raft log from
there. The one moment the store must be durable is before the driver releases
Raft WAL segments at a snapshot: `KVStore.checkpoint_durable()` runs a full
checkpoint, which fsyncs SQLite's WAL and then the database file.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS kv (
    rev        INTEGER NOT NULL,
    sub        INTEGER NOT NULL,
    key        BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    version    INTEGER NOT NULL,  -- 0 = tombstone
    lease      INTEGER NOT NULL,
    value      BLOB,
    PRIMARY KEY (rev, sub)
);
CREATE INDEX IF NOT EXISTS kv_key ON kv (key, rev);
CREATE TABLE IF NOT EXISTS live (
    key        BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS live_lease ON live (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alarm (
    member_id INTEGER NOT NULL,  -- uint64 stored as its int64 bit pattern
    type      INTEGER NOT NULL,
    PRIMARY KEY (member_id, type)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS member (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS member_removed (id INTEGER PRIMARY KEY);
"""

# etcd's first revision is 1: an empty store answers revision 1 and the first
# write gets revision 2 (see the reference transcript).
INITIAL_META = {
    "schema_version": SCHEMA_VERSION,
    "applied_index": 0,
    "current_rev": 1,
    "compact_rev": 0,
}


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the database with the store's durability settings.

    isolation_level=None: the store issues BEGIN/COMMIT itself, one transaction
    per applied batch. check_same_thread=False: the driver runs backups and
    snapshot installs in a worker thread; the store serializes access with its
    own lock.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    # No checkpoint inside a COMMIT on the event loop: node/mvcc/checkpointer.py runs
    # them in a thread (a connection's close still checkpoints, for tools).
    conn.execute("PRAGMA wal_autocheckpoint=0")
    # Keep SQLite's WAL file from staying large on disk after a burst.
    conn.execute("PRAGMA journal_size_limit=8388608")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
    conn.executescript(DDL)
    for name, value in INITIAL_META.items():
        conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", (name, value))
    return conn


def to_i64(u: int) -> int:
    """uint64 member id -> the int64 SQLite can store."""
    return u - (1 << 64) if u >= (1 << 63) else u


def to_u64(i: int) -> int:
    return i + (1 << 64) if i < 0 else i
