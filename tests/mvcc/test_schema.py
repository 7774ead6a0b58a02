"""The SQLite layout (node/mvcc/schema.py): one B-tree per revision, and v1 files upgraded.

A v1 file is built here with v1's own DDL (no binary fixture): the content of a store
written by this code, copied row by row into v1's layout, so a test can compare what the
upgraded file answers with what the original answered.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.errors import ErrTooManyOps
from node.mvcc import dbfile, kv, schema
from node.mvcc import requests as rq
from node.mvcc.hash import hash_file, hash_kv_file
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log

# schema version 1's kv table and its index, as raftmon wrote them before schema 2
V1_KV = """
CREATE TABLE kv (
    rev        INTEGER NOT NULL,
    sub        INTEGER NOT NULL,
    key        BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL,
    value      BLOB,
    PRIMARY KEY (rev, sub)
);
CREATE INDEX kv_key ON kv (key, rev);
CREATE TABLE live (
    key        BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX live_lease ON live (lease) WHERE lease != 0;
"""
V1_TABLES = ("kv", "kv_key", "live", "live_lease")

WRITES: list[object] = [
    rq.PutRequest(b"a", b"1"),
    rq.PutRequest(b"b", b"2"),
    rq.LeaseGrantRequest(ttl=60, id=7),
    rq.PutRequest(b"a", b"3"),
    rq.PutRequest(b"d", b"x", lease=7),
    rq.PutRequest(b"g", b"y", lease=7),
    rq.DeleteRangeRequest(b"b"),
    rq.TxnRequest(success=[rq.PutRequest(b"e", b"1"), rq.PutRequest(b"f", b"2")]),
    rq.PutRequest(b"c", b""),
    rq.CompactionRequest(revision=5),
    rq.DeleteRangeRequest(b"e", b"g"),  # two tombstones in one revision: subs 0 and 1
    rq.PutRequest(b"a", b"4"),
    rq.LeaseGrantRequest(ttl=30, id=9),
    rq.PutRequest(b"h", b"z", lease=9),
]


def _written(path: Path) -> KVStore:
    store = KVStore.open(str(path))
    log = Log(store)
    for w in WRITES:
        log.apply(w)
    store.commit()
    return store


def _to_v1(src: str, dst: Path) -> None:
    """The same content in schema 1's layout: every table copied, kv split into rev/sub
    (without its links to previous versions), live without mod_sub."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(dst, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (src,))
        conn.executescript(V1_KV)
        conn.execute(
            "INSERT INTO kv SELECT id >> 24, id & 16777215, key, create_rev, version, lease, "
            "value FROM src.kv ORDER BY id"
        )
        conn.execute(
            "INSERT INTO live SELECT key, create_rev, mod_rev, version, lease FROM src.live"
        )
        others = f"name NOT IN {V1_TABLES}"
        for (sql,) in conn.execute(
            f"SELECT sql FROM src.sqlite_master WHERE {others} "
            "AND sql IS NOT NULL ORDER BY type DESC"  # tables before indexes
        ).fetchall():
            conn.execute(sql)
        for (table,) in conn.execute(
            f"SELECT name FROM src.sqlite_master WHERE type = 'table' AND {others}"
        ).fetchall():
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
        conn.execute("UPDATE meta SET value = 1 WHERE name = 'schema_version'")
        conn.execute("DETACH DATABASE src")
    finally:
        conn.close()


def _answers(store: KVStore) -> list[object]:
    """What clients can read: every retained revision's range, leases and their keys."""
    revs = range(store.compact_revision(), store.current_revision() + 1)
    out: list[object] = [store.range(rq.RangeRequest(b"\0", b"\0", revision=r)).kvs for r in revs]
    out.append(store.history(kv.HistoryQuery(b"\0", b"\0", 5, 99, 100, prev_kv=True)))
    out.append([(lease, store.lease_keys(lease)) for lease in store.lease_ids()])
    out.append((store.current_revision(), store.compact_revision(), store.applied_index()))
    return out


def _rows(conn: sqlite3.Connection) -> list[object]:
    """kv and live; a link to a row compaction deleted counts as none (a v1 file lost it)."""
    kv_rows = conn.execute(
        "SELECT id, key, create_rev, version, lease, "
        "CASE WHEN prev_id IN (SELECT id FROM kv) THEN prev_id ELSE 0 END, value "
        "FROM kv ORDER BY id"
    ).fetchall()
    return [kv_rows, conn.execute("SELECT * FROM live ORDER BY key").fetchall()]


def _index_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    return {
        str(name): [str(r[2]) for r in conn.execute(f"PRAGMA index_info('{name}')")]
        for _seq, name, *_ in conn.execute("PRAGMA index_list('kv')")
    }


def test_the_store_writes_one_b_tree_per_revision_and_no_index_of_it(store: KVStore) -> None:
    Log(store).apply(rq.PutRequest(b"k", b"v"))
    conn = store._db()
    assert _index_columns(conn) == {}  # no (rev, sub) index, no (key, rev) index
    columns = [r[1] for r in conn.execute("PRAGMA table_info('kv')")]
    assert columns == ["id", "key", "create_rev", "version", "lease", "prev_id", "value"]
    (row_id,) = conn.execute("SELECT id FROM kv").fetchone()
    assert schema.split_id(row_id) == (2, 0)  # the row id is the revision


def test_a_v1_file_opens_as_v2_with_every_revision_and_the_same_hashes(tmp_path: Path) -> None:
    original = _written(tmp_path / "original" / "db")
    try:
        want = _answers(original)
        compact, current = original.compact_revision(), original.current_revision()
        hashes = [hash_kv_file(original.path, rev) for rev in range(compact + 1, current + 1)]
        whole = hash_file(original.path)
        tables = _rows(original._db())
    finally:
        original.close()
    v1 = tmp_path / "v1" / "db"
    _to_v1(original.path, v1)
    conn = sqlite3.connect(v1)
    try:
        assert _index_columns(conn) == {
            "kv_key": ["key", "rev"],
            "sqlite_autoindex_kv_1": ["rev", "sub"],
        }
    finally:
        conn.close()
    assert dbfile.status(str(v1)).revision == current  # an old file is still readable

    upgraded = KVStore.open(str(v1))
    try:
        assert _answers(upgraded) == want
        assert [hash_kv_file(str(v1), r) for r in range(compact + 1, current + 1)] == hashes
        assert hash_file(str(v1)) == whole
        conn = upgraded._db()
        assert _rows(conn) == tables  # each row's link to its previous version rebuilt
        assert schema.stored_version(conn) == schema.SCHEMA_VERSION
        assert _index_columns(conn) == {}
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "kv_v2" not in names
        Log(upgraded).apply(rq.PutRequest(b"a", b"5"))  # and it takes writes
        assert upgraded.range(rq.RangeRequest(b"a")).kvs[0].version == 4
    finally:
        upgraded.close()


def test_a_v1_snapshot_image_is_upgraded_when_installed_or_adopted(tmp_path: Path) -> None:
    original = _written(tmp_path / "original" / "db")
    try:
        want = _answers(original)
    finally:
        original.close()
    image = tmp_path / "image" / "db"
    _to_v1(original.path, image)

    follower = KVStore.open(str(tmp_path / "follower" / "db"))  # an older leader's image
    try:
        follower.restore_from(str(image))
        assert _answers(follower) == want
    finally:
        follower.close()

    adopted = dbfile.adopt_for_new_cluster(str(image))  # raftmon snapshot restore
    assert adopted.revision == want[-1][0]  # type: ignore[index]
    conn = sqlite3.connect(image)
    try:
        assert schema.stored_version(conn) == schema.SCHEMA_VERSION
    finally:
        conn.close()


def test_a_file_of_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    KVStore.open(str(path)).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = 99 WHERE name = 'schema_version'")
    conn.close()
    with pytest.raises(schema.SchemaError, match="schema version 99"):
        KVStore.open(str(path))
    with pytest.raises(dbfile.DBFileError, match="schema version 99"):
        dbfile.status(str(path))


def test_a_revision_refuses_more_changes_than_its_row_ids_hold(
    store: KVStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log(store)
    for key in (b"x1", b"x2", b"x3"):
        log.apply(rq.PutRequest(key, b"v"))
    monkeypatch.setattr(kv, "SUB_LIMIT", 2)
    before = store.current_revision()
    assert isinstance(log.error(rq.DeleteRangeRequest(b"x", b"y")), ErrTooManyOps)
    assert store.current_revision() == before
    assert len(store.range(rq.RangeRequest(b"x", b"y")).kvs) == 3
