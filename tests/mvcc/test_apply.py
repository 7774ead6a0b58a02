"""apply_batch: one transaction per batch, exactly-once across restarts, snapshots."""

from __future__ import annotations

import contextlib
import os
import sqlite3

import pytest

from node.errors import ErrApplyFailed, ErrLeaseNotFound, ErrUndecodable
from node.mvcc import requests as rq
from node.mvcc.kv import WriteTxn
from node.mvcc.observer import NULL_BACKEND_OBSERVER
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log, OnCommit


def dump(store: KVStore) -> list[rq.KeyValue]:
    return store.range(rq.RangeRequest(b"\0", b"\0")).kvs


def test_applying_the_same_entries_twice_changes_nothing(store: KVStore, raft: Log) -> None:
    entries = [raft.entry(rq.PutRequest(b"k%d" % i, b"v")) for i in range(5)]
    first = store.apply_batch(entries)
    assert [r.response.revision for r in first] == [2, 3, 4, 5, 6]
    before = (dump(store), store.current_revision(), store.applied_index())
    assert store.apply_batch(entries) == []
    # a batch that overlaps the applied index applies only the new tail
    entries.append(raft.entry(rq.PutRequest(b"k0", b"w")))
    (result,) = store.apply_batch(entries)
    assert result.index == entries[-1][0]
    assert result.response.revision == 7
    assert before[0] != dump(store)
    assert store.apply_batch(entries) == []
    assert store.applied_index() == entries[-1][0]


def test_noop_entries_advance_the_applied_index_only(store: KVStore) -> None:
    assert store.apply_batch([(1, b""), (2, b"")]) == []
    assert store.applied_index() == 2
    assert store.current_revision() == 1


def test_errors_are_per_entry_and_do_not_abort_the_batch(store: KVStore, raft: Log) -> None:
    results = raft.batch(
        rq.PutRequest(b"a", b"1"),
        rq.PutRequest(b"b", b"2", lease=404),
        rq.PutRequest(b"c", b"3"),
    )
    assert [r.error for r in results] == [None, ErrLeaseNotFound(), None]
    assert results[2].response.revision == 3
    (bad,) = store.apply_batch([(raft.index + 1, b"\x07garbage")])
    assert isinstance(bad.error, ErrUndecodable)
    assert store.applied_index() == raft.index + 1


def test_restart_replays_exactly_after_the_stored_applied_index(db_path: str) -> None:
    store = KVStore.open(db_path)
    raft = Log(store)
    log_entries = [raft.entry(rq.PutRequest(b"k", b"%d" % i)) for i in range(10)]
    store.apply_batch(log_entries[:6])
    store.close()
    # "crash" after entry 6: the Raft log replays everything; only 7.. apply
    store = KVStore.open(db_path)
    try:
        assert store.applied_index() == 6
        results = store.apply_batch(log_entries)
        assert [r.index for r in results] == [7, 8, 9, 10]
        assert store.range(rq.RangeRequest(b"k")).kvs == [rq.KeyValue(b"k", 2, 11, 10, b"9")]
    finally:
        store.close()


def test_an_observer_failing_after_commit_leaves_state_consistent(
    store: KVStore, raft: Log
) -> None:
    raft.apply(rq.PutRequest(b"a", b"1"))

    class Boom(Exception):
        pass

    def explode(_seconds: float) -> None:
        raise Boom

    entries = [raft.entry(rq.PutRequest(b"b", b"2"))]
    store.hooks = OnCommit(explode)  # raised after COMMIT
    try:
        store.apply_batch(entries)
    except Boom:
        pass
    store.hooks = NULL_BACKEND_OBSERVER
    # the commit itself succeeded, so the reload shows the new state
    assert store.current_revision() == 3
    assert store.applied_index() == entries[0][0]


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "travelling"])
def test_backup_and_restore_carry_state_and_applied_index(
    store: KVStore, raft: Log, tmp_path: os.PathLike[str], durable: bool
) -> None:
    raft.apply(rq.LeaseGrantRequest(ttl=100, id=1))
    raft.apply(rq.PutRequest(b"k", b"v", lease=1))
    image = os.path.join(tmp_path, "snap.db")
    info = store.backup(image, durable=durable)
    assert info.applied_index == 2
    assert info.revision == 2
    assert info.size > 0
    # the image is a self-contained SQLite file (rollback journal mode, nothing beside it)
    assert [n for n in os.listdir(tmp_path) if n.startswith("snap.db")] == ["snap.db"]
    with sqlite3.connect(image) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    # the store moves on; a follower restores the older image
    raft.apply(rq.PutRequest(b"k", b"w"))
    other = KVStore.open(os.path.join(tmp_path, "other", "db"))
    try:
        Log(other).apply(rq.PutRequest(b"junk", b"x"))
        other.restore_from(image)
        assert other.applied_index() == 2
        assert other.current_revision() == 2
        assert dump(other) == [rq.KeyValue(b"k", 2, 2, 1, b"v", 1)]
        assert other.lease_ids() == [1]
        # it keeps applying from the image's index
        follow = Log(other)
        assert follow.apply(rq.PutRequest(b"k", b"w")).revision == 3
    finally:
        other.close()


def _index_by_the_old_builder(path: str) -> dict[bytes, tuple[int, ...]]:
    """The key index as the row-by-row builder made it before the batched one."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            bytes(key): (create_rev, mod_rev, version, lease, mod_sub)
            for key, create_rev, mod_rev, version, lease, mod_sub in conn.execute(
                "SELECT key, create_rev, mod_rev, version, lease, mod_sub FROM live"
            )
        }


def test_a_restored_key_index_is_the_one_the_old_builder_made(
    store: KVStore, raft: Log, tmp_path: os.PathLike[str]
) -> None:
    raft.apply(rq.LeaseGrantRequest(ttl=100, id=1))
    raft.apply(rq.LeaseGrantRequest(ttl=100, id=2))
    for i in range(10):
        raft.apply(rq.PutRequest(b"k%d" % i, b"v", lease=i % 3))
    raft.apply(rq.PutRequest(b"k1", b"again"))  # a second version
    raft.apply(rq.DeleteRangeRequest(b"k2"))
    raft.apply(rq.PutRequest(b"k2", b"reborn"))  # a new generation
    raft.apply(rq.LeaseRevokeRequest(id=2))  # its keys deleted
    raft.apply(rq.DeleteRangeRequest(b"k7", b"k9"))
    raft.apply(rq.CompactionRequest(revision=store.current_revision() - 2, physical=True))
    raft.apply(rq.PutRequest(b"k10", b"v"))
    image = os.path.join(tmp_path, "image.db")
    store.backup(image)
    expected = _index_by_the_old_builder(image)
    assert sorted(expected) == [b"k0", b"k1", b"k10", b"k2", b"k3", b"k4", b"k6", b"k9"]
    assert store._state.live == expected  # kept in step while applying
    other = KVStore.open(os.path.join(tmp_path, "other", "db"))
    try:
        other.restore_from(image)
        assert other._state.live == expected
        assert all(type(key) is bytes for key in other._state.live)
    finally:
        other.close()


def test_checkpoint_durable_empties_sqlite_wal_into_the_database(
    store: KVStore, raft: Log, db_path: str
) -> None:
    for i in range(20):
        raft.apply(rq.PutRequest(b"k%d" % i, b"x" * 100))
    store.checkpoint_durable()
    # a fresh read-only copy of just the main file already has everything
    with open(db_path, "rb") as f:
        data = f.read()
    copy = db_path + ".copy"
    with open(copy, "wb") as f:
        f.write(data)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name='applied_index'").fetchone()[0] == 20


def test_stats_report_sizes_and_counters(store: KVStore, raft: Log) -> None:
    raft.apply(rq.PutRequest(b"a", b"12345"))
    raft.apply(rq.TxnRequest(success=[rq.PutRequest(b"b", b"1"), rq.RangeRequest(b"a")]))
    raft.apply(rq.DeleteRangeRequest(b"a"))
    store.range(rq.RangeRequest(b"b"))
    st = store.stats()
    assert (st.put_total, st.txn_total, st.delete_total, st.range_total) == (2, 1, 1, 2)
    assert st.keys_total == 1
    assert st.current_revision == 4
    assert st.total_put_size == 8
    assert st.db_total_size >= st.db_in_use_size > 0
    assert st.quota_bytes == 2 * 1024**3


def test_the_key_index_in_memory_follows_rollbacks_restores_and_restarts(
    store: KVStore,
    raft: Log,
    db_path: str,
    tmp_path: os.PathLike[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Puts read a key's versions from memory; it must agree with the `live` table."""
    import node.mvcc.store as store_module
    import node.mvcc.txn as txn_module

    raft.apply(rq.PutRequest(b"k", b"v1"))
    real_execute = txn_module.execute

    def put_then_fail(  # a bug half-way through a txn
        wt: WriteTxn, req: rq.TxnRequest, path: dict[int, bool]
    ) -> rq.TxnResponse:
        real_execute(wt, req, path)
        raise RuntimeError("boom")

    monkeypatch.setattr(store_module, "execute", put_then_fail)
    txn = rq.TxnRequest(success=[rq.PutRequest(b"k", b"lost")])
    (result,) = store.apply_batch([raft.entry(txn)])  # answered, the member lives
    assert isinstance(result.error, ErrApplyFailed)
    assert str(result.error) == "raftmon: request could not be applied: RuntimeError: boom"
    monkeypatch.undo()
    raft.apply(rq.PutRequest(b"k", b"v2"))
    assert store.range(rq.RangeRequest(b"k")).kvs[0].version == 2  # not 3: the txn is gone
    raft.apply(rq.DeleteRangeRequest(b"k"))
    raft.apply(rq.PutRequest(b"k", b"v3"))  # a new generation after the delete
    kv = store.range(rq.RangeRequest(b"k")).kvs[0]
    assert (kv.version, kv.create_revision) == (1, kv.mod_revision)
    image = os.path.join(tmp_path, "image.db")
    store.backup(image)
    raft.apply(rq.PutRequest(b"k", b"after-image"))
    store.restore_from(image)  # back to the image's key index
    assert Log(store).apply(rq.PutRequest(b"k", b"v4")).revision == kv.mod_revision + 1
    assert store.range(rq.RangeRequest(b"k")).kvs[0].version == 2
    store.close()
    reopened = KVStore.open(db_path)
    try:
        assert Log(reopened).apply(rq.PutRequest(b"k", b"v5")) is not None
        assert reopened.range(rq.RangeRequest(b"k")).kvs[0].version == 3
    finally:
        reopened.close()


def test_a_fault_of_the_disk_while_applying_stops_the_member_and_keeps_nothing_of_the_batch(
    store: KVStore, raft: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error is not the entry's doing: answering it would make this member diverge."""
    import node.mvcc.store as store_module

    raft.apply(rq.PutRequest(b"k", b"v1"))

    def disk_fails(wt: WriteTxn, req: rq.TxnRequest, path: dict[int, bool]) -> rq.TxnResponse:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_module, "execute", disk_fails)
    put = raft.entry(rq.PutRequest(b"other", b"x"))
    txn = raft.entry(rq.TxnRequest(success=[rq.PutRequest(b"k", b"lost")]))
    with pytest.raises(sqlite3.OperationalError):
        store.apply_batch([put, txn])
    monkeypatch.undo()
    assert store.range(rq.RangeRequest(b"other")).kvs == []  # the whole open batch is void
    assert store.range(rq.RangeRequest(b"k")).kvs[0].value == b"v1"


def test_pending_key_index_rows_survive_failed_entries_and_commit_with_the_batch(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put changes the key index in memory; `live` gets the rows before any read of it
    and with the batch's commit, whatever failed in between."""
    import node.mvcc.kv as kv_module
    import node.mvcc.store as store_module
    import node.mvcc.txn as txn_module

    store = KVStore.open(db_path, batch_interval=3600.0)
    raft = Log(store)
    try:
        raft.batch(rq.PutRequest(b"a", b"1"), rq.PutRequest(b"b", b"1"))
        assert store._state.live_dirty  # pending: the batch is open and nothing read `live`
        # a put whose one statement fails (its row id taken): answered, nothing changed
        taken = store._state.live[b"a"]
        monkeypatch.setattr(kv_module, "row_id", lambda rev, sub: taken[1] << 24 | taken[4])
        assert isinstance(raft.error(rq.PutRequest(b"d", b"x")), ErrApplyFailed)
        assert set(store._state.live_dirty) == {b"a", b"b"}  # still pending, still whole
        monkeypatch.undo()
        real_execute = txn_module.execute

        def put_then_fail(
            wt: WriteTxn, req: rq.TxnRequest, path: dict[int, bool]
        ) -> rq.TxnResponse:
            real_execute(wt, req, path)
            raise RuntimeError("boom")

        monkeypatch.setattr(store_module, "execute", put_then_fail)
        txn = rq.TxnRequest(success=[rq.PutRequest(b"a", b"lost"), rq.PutRequest(b"c", b"x")])
        assert isinstance(raft.error(txn), ErrApplyFailed)
        monkeypatch.undo()
        raft.apply(rq.PutRequest(b"b", b"2"))
        raft.apply(rq.DeleteRangeRequest(b"a"))
        assert store.current_revision() == 5
    finally:
        store.close()  # commits the open batch
    reopened = KVStore.open(db_path)
    try:
        kvs = reopened.range(rq.RangeRequest(b"\0", b"\0")).kvs
        assert [(kv.key, kv.value, kv.version) for kv in kvs] == [(b"b", b"2", 2)]
        assert reopened.range(rq.RangeRequest(b"b")).kvs[0].mod_revision == 4
        assert Log(reopened).apply(rq.PutRequest(b"a", b"3")).revision == 6
    finally:
        reopened.close()
