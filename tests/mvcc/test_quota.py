"""Backend quota and the NOSPACE alarm, driven the way the server drives them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.errors import ErrCorrupt, ErrNoSpace
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log

MEMBER = 0x8342C5B6A3E2D1F0  # > 2**63: member ids are uint64


def propose(store: KVStore, raft: Log, req: Any) -> Any:
    """What the server does: quota check before proposing, alarm on failure."""
    if not store.check_quota(req):
        raft.apply(rq.AlarmRequest(rq.AlarmAction.ACTIVATE, MEMBER, rq.AlarmType.NOSPACE))
        raise ErrNoSpace
    return raft.apply(req)


def test_filling_past_the_quota_raises_the_alarm_and_disarm_recovers(db_path: str) -> None:
    store = KVStore.open(db_path, quota_bytes=1)  # measure first, then set a tiny quota
    try:
        raft = Log(store)
        raft.apply(rq.PutRequest(b"seed", b"x"))
        store.quota_bytes = store.db_total_size() + 256 * 1024
        value = b"v" * 4096
        written: set[bytes] = set()
        refused: ErrNoSpace | None = None
        for i in range(10_000):  # bounded: the quota is hit long before
            key = b"key/%05d" % (i % 40)
            try:
                propose(store, raft, rq.PutRequest(key, value))
            except ErrNoSpace as err:
                refused = err
                break
            written.add(key)
        assert refused is not None
        assert written
        assert store.alarms() == [(MEMBER, "NOSPACE")]
        alarm_list = raft.apply(rq.AlarmRequest(rq.AlarmAction.GET))
        assert alarm_list.alarms == [rq.AlarmMember(MEMBER, rq.AlarmType.NOSPACE)]

        # every member now rejects writes at apply, with etcd's message
        rejected = raft.error(rq.PutRequest(b"key/00000", b"small"))
        assert str(rejected) == "etcdserver: mvcc: database space exceeded"
        txn_put = rq.TxnRequest(success=[rq.PutRequest(b"a", b"b")])
        assert isinstance(raft.error(txn_put), ErrNoSpace)
        assert isinstance(raft.error(rq.LeaseGrantRequest(ttl=10, id=1)), ErrNoSpace)
        # reads, read-only txns, deletes and compaction keep working
        count = store.range(rq.RangeRequest(b"key/", b"key0", count_only=True)).count
        assert count == len(written)
        assert raft.apply(rq.TxnRequest(success=[rq.RangeRequest(b"seed")])).succeeded
        deleted = raft.apply(rq.DeleteRangeRequest(b"key/", b"key0")).deleted
        assert deleted == len(written)
        raft.apply(rq.CompactionRequest(store.current_revision()))
        store.defragment()
        assert store.check_quota(rq.PutRequest(b"key/00000", value))

        # disarm: writes work again
        disarm = rq.AlarmRequest(rq.AlarmAction.DEACTIVATE, MEMBER, rq.AlarmType.NOSPACE)
        assert raft.apply(disarm).alarms == [rq.AlarmMember(MEMBER, rq.AlarmType.NOSPACE)]
        assert store.alarms() == []
        assert propose(store, raft, rq.PutRequest(b"key/00000", b"back")).revision > 0
    finally:
        store.close()


def test_defragment_returns_free_pages(store: KVStore, raft: Log) -> None:
    for i in range(200):
        raft.apply(rq.PutRequest(b"k%03d" % i, b"x" * 2000))
    raft.apply(rq.DeleteRangeRequest(b"k", b"l"))
    raft.apply(rq.CompactionRequest(store.current_revision()))
    before = store.stats()
    assert before.db_in_use_size < before.db_total_size
    store.defragment()
    after = store.stats()
    assert after.db_total_size < before.db_total_size
    assert after.db_total_size == after.db_in_use_size  # VACUUM left no free pages, WAL empty


def test_alarms_survive_a_restart_and_corrupt_blocks_everything(db_path: str) -> None:
    store = KVStore.open(db_path)
    Log(store).apply(rq.AlarmRequest(rq.AlarmAction.ACTIVATE, 7, rq.AlarmType.CORRUPT))
    store.close()
    store = KVStore.open(db_path)
    try:
        raft = Log(store)
        assert store.alarms() == [(7, "CORRUPT")]
        assert isinstance(raft.error(rq.PutRequest(b"a")), ErrCorrupt)
        assert isinstance(raft.error(rq.DeleteRangeRequest(b"a")), ErrCorrupt)
        with pytest.raises(ErrCorrupt):
            store.range(rq.RangeRequest(b"a"))
        raft.apply(rq.AlarmRequest(rq.AlarmAction.DEACTIVATE, 7, rq.AlarmType.CORRUPT))
        assert raft.apply(rq.PutRequest(b"a")).revision == 2
    finally:
        store.close()


def test_quota_cost_follows_etcd() -> None:
    from node.mvcc import quota

    assert quota.cost(rq.PutRequest(b"ab", b"xyz")) == 256 + 5
    txn = rq.TxnRequest(
        success=[rq.PutRequest(b"a", b"1"), rq.RangeRequest(b"b")],
        failure=[rq.PutRequest(b"a", b"1"), rq.PutRequest(b"b", b"2")],
    )
    assert quota.cost(txn) == 2 * (256 + 2)
    assert quota.cost(rq.LeaseGrantRequest(ttl=5)) == 64
    assert quota.cost(rq.DeleteRangeRequest(b"a")) == 0


def test_db_size_counts_each_page_once_while_the_wal_holds_them(db_path: str) -> None:
    """SQLite's page_count already includes pages that so far live only in its WAL
    file: the db size (metric and quota) is that count, not that plus the WAL file."""
    store = KVStore.open(db_path)
    try:
        raft = Log(store)
        for i in range(200):
            raft.apply(rq.PutRequest(b"key/%04d" % i, b"v" * 1024))
        store.commit()
        wal = Path(db_path + "-wal")
        assert wal.stat().st_size > 0  # frames not yet checkpointed
        conn = sqlite3.connect(db_path)
        try:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        finally:
            conn.close()
        assert store.db_total_size() == page_count * page_size
        assert store.stats().db_total_size == page_count * page_size
        # 200 KiB of values take more than 200 KiB of pages, and far less than twice that
        assert 200 * 1024 < store.db_total_size() < 400 * 1024
    finally:
        store.close()
