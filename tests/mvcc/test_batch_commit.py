"""The backend batch: applied entries wait in one open SQLite transaction, as etcd's
--backend-batch-interval / --backend-batch-limit batch, and every path that needs the
database file itself (backup, checkpoint, defrag, close, restore) sees a whole batch."""

from __future__ import annotations

import sqlite3
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log, OnCommit, sigkill_when_ready

HOUR = 3600.0  # an interval that never runs out during a test


def committed_applied_index(db_path: str) -> int:
    """What a second connection (a backup, a restart) sees: committed batches only."""
    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE name = 'applied_index'").fetchone()
    return int(row[0])


@pytest.fixture
def batched(db_path: str) -> Iterator[KVStore]:
    store = KVStore.open(db_path, batch_interval=HOUR, batch_limit=1_000)
    yield store
    store.close()  # idempotent: a test may have closed it already


def test_applied_entries_are_readable_before_their_batch_commits(
    batched: KVStore, db_path: str
) -> None:
    raft = Log(batched)
    raft.apply(rq.PutRequest(b"k", b"v1"))
    raft.apply(rq.PutRequest(b"k", b"v2"))
    # the store reads its own open batch, as etcd's reads see its uncommitted batch
    assert batched.applied_index() == 2
    assert batched.range(rq.RangeRequest(b"k")).kvs[0].value == b"v2"
    assert committed_applied_index(db_path) == 0
    commits: list[float] = []
    batched.hooks = OnCommit(commits.append)  # etcd_disk_backend_commit_duration_seconds
    batched.commit()
    assert committed_applied_index(db_path) == 2
    assert len(commits) == 1
    batched.commit()  # nothing open: no empty commit is timed
    assert len(commits) == 1


def test_every_read_of_the_key_index_sees_puts_of_the_open_batch(batched: KVStore) -> None:
    """A put changes the key index in memory; ranges, counts, reads at a past revision and
    a lease's keys read the `live` table, which must hold the put by then."""
    raft = Log(batched)
    raft.apply(rq.LeaseGrantRequest(ttl=60, id=7))
    raft.apply(rq.PutRequest(b"a", b"1"))
    raft.apply(rq.PutRequest(b"b", b"1", lease=7))
    assert batched.lease_keys(7) == [b"b"]
    raft.apply(rq.PutRequest(b"c", b"1", lease=7))
    every = rq.RangeRequest(b"\0", b"\0", count_only=True)
    assert batched.range(every).count == 3
    raft.apply(rq.DeleteRangeRequest(b"a"))
    assert batched.range(rq.RangeRequest(b"a", revision=3)).kvs[0].value == b"1"
    assert batched.range(every).count == 2
    raft.apply(rq.LeaseRevokeRequest(id=7))  # deletes the keys the lease holds, pending or not
    assert batched.range(every).count == 0


def test_an_etcd_error_raised_after_a_write_leaves_no_pending_key_index_row(
    batched: KVStore, db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """etcd's errors come before any write; were one raised after, the rollback to the
    entry's savepoint must take the key index's pending rows with it."""
    from node.errors import ErrTooManyOps
    from node.mvcc.kv import WriteTxn

    raft = Log(batched)
    raft.apply(rq.PutRequest(b"a", b"1"))
    real = WriteTxn.delete_range

    def delete_then_refuse(wt: WriteTxn, req: rq.DeleteRangeRequest) -> rq.DeleteRangeResponse:
        real(wt, req)
        raise ErrTooManyOps

    monkeypatch.setattr(WriteTxn, "delete_range", delete_then_refuse)
    assert raft.error(rq.DeleteRangeRequest(b"a")) == ErrTooManyOps()
    monkeypatch.undo()
    assert batched.range(rq.RangeRequest(b"a")).kvs[0].value == b"1"
    batched.close()
    reopened = KVStore.open(db_path)
    try:
        assert reopened.range(rq.RangeRequest(b"a")).kvs[0].value == b"1"
    finally:
        reopened.close()


def test_a_batch_commits_once_it_holds_batch_limit_entries(db_path: str) -> None:
    store = KVStore.open(db_path, batch_interval=HOUR, batch_limit=3)
    raft = Log(store)
    try:
        raft.batch(rq.PutRequest(b"a", b"1"), rq.PutRequest(b"b", b"2"))
        assert committed_applied_index(db_path) == 0
        raft.apply(rq.PutRequest(b"c", b"3"))
        assert committed_applied_index(db_path) == 3
    finally:
        store.close()


def test_a_batch_commits_once_it_is_batch_interval_old(db_path: str) -> None:
    store = KVStore.open(db_path, batch_interval=0.05, batch_limit=1_000)
    raft = Log(store)
    try:
        raft.apply(rq.PutRequest(b"a", b"1"))
        store.commit_if_due()  # young: stays open
        assert committed_applied_index(db_path) == 0
        for _ in range(200):  # at most 2 s
            if store.commit_due():
                break
            time.sleep(0.01)
        assert store.commit_due()
        store.commit_if_due()  # the driver calls this on every tick
        assert committed_applied_index(db_path) == 1
    finally:
        store.close()


def test_zero_interval_commits_every_apply(db_path: str) -> None:
    store = KVStore.open(db_path)  # the default: no batching across calls
    raft = Log(store)
    try:
        raft.apply(rq.PutRequest(b"a", b"1"))
        assert committed_applied_index(db_path) == 1
    finally:
        store.close()


def test_close_commits_the_open_batch(batched: KVStore, db_path: str) -> None:
    raft = Log(batched)
    raft.apply(rq.PutRequest(b"a", b"1"))
    batched.close()
    assert committed_applied_index(db_path) == 1


def test_backup_after_commit_holds_every_applied_entry(batched: KVStore, tmp_path: Path) -> None:
    raft = Log(batched)
    for i in range(5):
        raft.apply(rq.PutRequest(b"k%d" % i, b"v"))
    batched.commit()  # the driver commits before it takes a snapshot image
    info = batched.backup(str(tmp_path / "image.db"))
    assert info.applied_index == 5
    batched.checkpoint_durable()  # no open batch: the FULL checkpoint is not blocked


def test_defragment_commits_the_open_batch_first(batched: KVStore, db_path: str) -> None:
    raft = Log(batched)
    raft.apply(rq.PutRequest(b"a", b"1"))
    batched.defragment()  # VACUUM cannot run inside a transaction
    assert committed_applied_index(db_path) == 1
    assert batched.range(rq.RangeRequest(b"a")).kvs[0].value == b"1"
    raft.apply(rq.PutRequest(b"b", b"2"))  # and batching goes on afterwards
    assert batched.applied_index() == 2


def test_restore_replaces_an_open_batch(batched: KVStore, tmp_path: Path) -> None:
    source = KVStore.open(str(tmp_path / "leader" / "db"))
    try:
        Log(source).apply(rq.PutRequest(b"from-leader", b"x"))
        image = str(tmp_path / "image.db")
        source.backup(image)
    finally:
        source.close()
    raft = Log(batched)
    raft.batch(*(rq.PutRequest(b"mine%d" % i, b"y") for i in range(3)))
    batched.restore_from(image)
    assert batched.applied_index() == 1
    assert [kv.key for kv in batched.range(rq.RangeRequest(b"\0", b"\0")).kvs] == [b"from-leader"]


def test_a_fault_of_the_machine_rolls_back_the_whole_open_batch(
    batched: KVStore, db_path: str
) -> None:
    raft = Log(batched)
    try:
        raft.apply(rq.PutRequest(b"a", b"1"))
        batched.commit()
        raft.apply(rq.PutRequest(b"b", b"2"))  # open, not committed

        class Boom(OSError):  # an I/O error: the member stops (a bug of ours would not)
            pass

        def explode(*_args: object, **_kwargs: object) -> None:
            raise Boom

        batched._put = explode  # type: ignore[method-assign,assignment]
        with pytest.raises(Boom):
            raft.apply(rq.PutRequest(b"c", b"3"))
        # back at the last commit; the Raft log replays the rest after a restart
        assert batched.applied_index() == 1
        assert batched.range(rq.RangeRequest(b"b")).kvs == []
    finally:
        del batched._put  # the fixture's close runs the real store again


CHILD = textwrap.dedent(
    """
    import sys
    from node.mvcc import codec
    from node.mvcc import requests as rq
    from node.mvcc.store import KVStore
    store = KVStore.open(sys.argv[1], batch_interval=3600.0, batch_limit=int(sys.argv[3]))
    batch = int(sys.argv[2])
    def entry(i):
        return (i, codec.encode_request(i, rq.PutRequest(b"k%05d" % i, b"%d" % i)))
    for lo in range(1, 50_001, batch):
        store.apply_batch([entry(i) for i in range(lo, lo + batch)])
        if lo == 40 * batch + 1:
            print("ready", flush=True)
    """
)


def test_sigkill_with_an_open_batch_loses_only_uncommitted_whole_batches(tmp_path: Path) -> None:
    db, batch, limit = str(tmp_path / "db"), 7, 35
    sigkill_when_ready(CHILD, db, str(batch), str(limit))
    store = KVStore.open(db)
    try:
        applied = store.applied_index()
        assert applied % limit == 0  # commits happen at batch_limit boundaries only
        assert applied >= 40 * batch - limit
        assert store.current_revision() == applied + 1
        assert store.range(rq.RangeRequest(b"k", b"l", count_only=True)).count == applied
    finally:
        store.close()
    # The key index's rows are written with the batch's commit (a put writes memory only):
    # the killed batch left none, and each committed one points at a committed kv row.
    with sqlite3.connect(db) as conn:
        live, orphans = conn.execute(
            "SELECT count(*), count(*) - count(k.id) FROM live l "
            "LEFT JOIN kv k ON k.id = (l.mod_rev << 24 | l.mod_sub)"
        ).fetchone()
    assert (live, orphans) == (applied, 0)
