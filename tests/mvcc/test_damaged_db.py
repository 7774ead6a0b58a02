"""A damaged page met by a read: inside the open batch, and once the damage is known.

SQLite cannot commit a transaction in which a read met a damaged page, so the first
such read costs the open batch (the member then stops at the commit and replays it
from its WAL); the store marks the file, and from then on (this run and the next)
reads run outside the batch, which is committed first: the damage costs reads of
the damaged pages only.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from node.errors import ErrBackendDamaged
from node.mvcc import requests as rq
from node.mvcc.store import BackendCorruptError, KVStore
from tests.abuse.damage import damage_page, page_that_breaks_some_reads
from tests.mvcc.conftest import Log

KEYS = 300
LONG_BATCH = 3600.0  # batches stay open until a read or the test commits them


def damaged_store(tmp_path: Path) -> tuple[Path, list[bytes]]:
    db = tmp_path / "member" / "db"
    store = KVStore.open(str(db))
    log = Log(store)
    for i in range(KEYS):
        log.apply(rq.PutRequest(b"k%03d" % i, b"v" * 300))
    store.close()
    page = page_that_breaks_some_reads(db, tmp_path / "scratch.db", KEYS)
    damage_page(db, page)
    store = KVStore.open(str(db))
    bad = []
    try:
        for i in range(KEYS):
            try:
                store.range(rq.RangeRequest(b"k%03d" % i))
            except ErrBackendDamaged:
                bad.append(b"k%03d" % i)
    finally:
        store.close()
    Path(str(db) + ".damaged").unlink()  # this probe ran outside any batch
    assert bad
    return db, bad


def test_a_damaged_read_inside_the_open_batch_marks_the_file_and_costs_the_batch(
    tmp_path: Path,
) -> None:
    db, bad = damaged_store(tmp_path)
    store = KVStore.open(str(db), batch_interval=LONG_BATCH)
    log = Log(store)
    log.apply(rq.PutRequest(b"a/new", b"1"))  # opens the batch
    with pytest.raises(ErrBackendDamaged):
        store.range(rq.RangeRequest(bad[0]))
    assert Path(str(db) + ".damaged").exists()
    with pytest.raises(sqlite3.DatabaseError):
        store.commit()  # SQLite's verdict: why reads must stay out of the batch
    with contextlib.suppress(sqlite3.DatabaseError):
        store.close()


def test_once_marked_reads_run_outside_the_batch_and_writes_are_kept(tmp_path: Path) -> None:
    db, bad = damaged_store(tmp_path)
    Path(str(db) + ".damaged").write_text("known\n")
    store = KVStore.open(str(db), batch_interval=LONG_BATCH)
    log = Log(store)
    for i in range(5):
        log.apply(rq.PutRequest(b"a/new%d" % i, b"kept"))
        with pytest.raises(ErrBackendDamaged):
            store.range(rq.RangeRequest(bad[0]))
        good = store.range(rq.RangeRequest(b"a/new%d" % i))
        assert good.kvs[0].value == b"kept"
    store.close()  # the batch commits
    again = KVStore.open(str(db))
    try:
        got = again.range(rq.RangeRequest(b"a/new", b"a/nex"))
        assert [kv.key for kv in got.kvs] == [b"a/new%d" % i for i in range(5)]
    finally:
        again.close()


def test_a_truncated_database_is_refused_at_open_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "member" / "db"
    store = KVStore.open(str(db))
    Log(store).apply(rq.PutRequest(b"k", b"v" * 100_000))
    store.close()
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 3)
    with pytest.raises(BackendCorruptError) as info:
        KVStore.open(str(db))
    assert info.value.path == str(db.absolute())
    assert str(db.absolute()) in str(info.value)
