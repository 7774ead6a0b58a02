"""The SQLite layout of the MVCC store, and how a connection is opened.

Tables
------
kv     every version of every key: one row per (revision, sub-revision), the
       "history" etcd keeps in bbolt's key bucket. A tombstone (delete) is a row
       with version 0 and value NULL. The row id IS the revision: `id` holds
       revision << SUB_BITS | sub-revision, so the table's B-tree is ordered as
       etcd's bbolt keys are and a put appends to it. Like bbolt's key bucket, kv has
       no index by key (schema 1 had two indexes besides the table: every put dirtied
       a page at a random place of a (key, rev) index that grew with the history).
       Instead each row links to its key's previous version: `prev_id`, the row id
       of the version it replaced (0 when the key did not exist just before, as
       after a delete). That link is what a key index served: prev_kv, reads at a
       past revision (the current keys from `live`, rows after the revision undone
       newest first), and compaction (a row is superseded by the row linking to it).
live   the current version of every existing key, pointing at its kv row
       (mod_rev, mod_sub); etcd keeps this in memory (the treeIndex). We keep it on disk for
       range reads and load it into memory at open (KVState.live), so a put needs
       no lookup; a write changes the memory index and its rows reach the table before
       the next read of it and with the batch's commit (KVState.live_dirty). The
       `lease` column doubles as the lease -> keys attachment (partial index live_lease).
lease  granted leases (id, ttl) - replicated state, as etcd's lease bucket.
alarm  active alarms (member_id, type) - replicated state, as etcd's alarm bucket.
meta   applied_index, current_rev, compact_rev: written in the same transaction
       as the entries they describe.
member the cluster's members (id, JSON attributes) and member_removed the ids
       removed for good - replicated state, as etcd's members buckets
       (node/mvcc/members.py).
request_ids, retried_ids  the request ids of the entries applied lately, by index,
       so a proposal sent twice is applied once (node/mvcc/dedup.py). Raft's
       state, not the key space's: a new cluster restored from a snapshot starts
       them empty.

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

SCHEMA_VERSION = 2
SUB_BITS = 24  # sub-revisions per revision: 16.7M changes; revisions up to 2**39
SUB_LIMIT = 1 << SUB_BITS
SUB_MASK = SUB_LIMIT - 1

# The kv table of schema 2, named by the caller (the migration builds it beside v1's).
KV_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id         INTEGER PRIMARY KEY,  -- revision << SUB_BITS | sub-revision
    key        BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    version    INTEGER NOT NULL,  -- 0 = tombstone
    lease      INTEGER NOT NULL,
    prev_id    INTEGER NOT NULL,  -- the key's version this row replaced; 0 = none
    value      BLOB
)"""

DDL = f"""
{KV_TABLE.format(name="kv")};
CREATE TABLE IF NOT EXISTS live (
    key        BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL,
    mod_sub    INTEGER NOT NULL DEFAULT 0  -- with mod_rev, the kv row id of the version
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
CREATE TABLE IF NOT EXISTS request_ids (idx INTEGER PRIMARY KEY, id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retried_ids (idx INTEGER PRIMARY KEY, id INTEGER NOT NULL);
"""

# A revision R's kv rows have ids in [R << SUB_BITS, (R + 1) << SUB_BITS): so in SQL,
# "rev <= R" is "id < first_id(R + 1)" and a row's revision is `id >> SUB_BITS`. Queries
# bound on id ranges walk the table's own B-tree.
REV = f"(id >> {SUB_BITS})"


def first_id_sql(expr: str) -> str:
    """SQL for the first row id of the revision `expr` (a bound parameter or column)."""
    return f"(({expr}) << {SUB_BITS})"


def row_id(rev: int, sub: int) -> int:
    """The kv row id of (revision, sub-revision)."""
    return rev << SUB_BITS | sub


def split_id(row_id: int) -> tuple[int, int]:
    """(revision, sub-revision) of a kv row id."""
    return row_id >> SUB_BITS, row_id & SUB_MASK


# etcd's first revision is 1: an empty store answers revision 1 and the first
# write gets revision 2 (see the reference transcript).
INITIAL_META = {
    "schema_version": SCHEMA_VERSION,
    "applied_index": 0,
    "current_rev": 1,
    "compact_rev": 0,
}


AUTO_VACUUM_INCREMENTAL = 2  # SQLite's PRAGMA auto_vacuum value for INCREMENTAL


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the database with the store's durability settings.

    isolation_level=None: the store issues BEGIN/COMMIT itself, one transaction
    per applied batch. check_same_thread=False: the driver runs backups and
    snapshot installs in a worker thread; the store serializes access with its
    own lock.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Free pages can then be given back in short steps (`KVStore.defrag_step`), so a
    # defragment never holds the store for as long as a whole-file VACUUM does. Takes
    # effect on a new file only; an older one is converted by its first defragment.
    conn.execute(f"PRAGMA auto_vacuum={AUTO_VACUUM_INCREMENTAL}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    # No checkpoint inside a COMMIT on the event loop: node/mvcc/checkpointer.py runs
    # them in a thread (a connection's close still checkpoints, for tools).
    conn.execute("PRAGMA wal_autocheckpoint=0")
    # Keep SQLite's WAL file from staying large on disk after a burst.
    conn.execute("PRAGMA journal_size_limit=8388608")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
    migrate(conn)
    conn.executescript(DDL)
    for name, value in INITIAL_META.items():
        conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", (name, value))
    return conn


class SchemaError(Exception):
    """The file's schema version is one this raftmon cannot read or upgrade."""


def stored_version(conn: sqlite3.Connection) -> int | None:
    """The file's schema version; None for a new, empty database."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return None
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def migrate(conn: sqlite3.Connection) -> bool:
    """Bring a database written by an older raftmon up to SCHEMA_VERSION; True if it ran.

    Version 1 -> 2: `kv` was keyed by a composite PRIMARY KEY (rev, sub) (a rowid table
    plus an automatic index) and indexed by (key, rev); version 2 makes the revision the
    row id and links each row to its key's previous version instead of indexing keys.
    The rows are copied in revision order into the new table (v1's key index finds each
    row's previous version), the old table and its indexes dropped: one transaction, so
    a crash leaves either file, never a mix.
    Every value, tombstone, revision and sub-revision is kept (HashKV answers the same).
    A member's data dir, a snapshot image received from an older leader
    (`KVStore.restore_from`) and a file given to `raftmon snapshot restore` all pass here.
    """
    version = stored_version(conn)
    if version is None or version == SCHEMA_VERSION:
        return False
    if version != 1:
        raise SchemaError(
            f"database has schema version {version}, this raftmon reads "
            f"versions 1 and {SCHEMA_VERSION}"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(KV_TABLE.format(name="kv_v2"))
        conn.execute("ALTER TABLE live ADD COLUMN mod_sub INTEGER NOT NULL DEFAULT 0")
        conn.execute(
            "UPDATE live SET mod_sub = (SELECT sub FROM kv WHERE kv.key = live.key "
            "AND kv.rev = live.mod_rev)"
        )
        # prev_id: the key's row just before, unless that is a tombstone (as a put writes it)
        conn.execute(
            "INSERT INTO kv_v2 (id, key, create_rev, version, lease, prev_id, value) "
            f"SELECT rev << {SUB_BITS} | sub, key, create_rev, version, lease, coalesce(("
            f"SELECT CASE WHEN p.version = 0 THEN 0 ELSE p.rev << {SUB_BITS} | p.sub END "
            "FROM kv AS p WHERE p.key = kv.key AND p.rev < kv.rev ORDER BY p.rev DESC LIMIT 1"
            "), 0), value FROM kv ORDER BY rev, sub"
        )
        conn.execute("DROP TABLE kv")  # its indexes (kv_key, the automatic one) go with it
        conn.execute("ALTER TABLE kv_v2 RENAME TO kv")
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def to_i64(u: int) -> int:
    """uint64 member id -> the int64 SQLite can store."""
    return u - (1 << 64) if u >= (1 << 63) else u


def to_u64(i: int) -> int:
    return i + (1 << 64) if i < 0 else i
