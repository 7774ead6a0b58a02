"""etcd's revision rules beyond the transcript: generations, txns, ranges, compaction."""

from __future__ import annotations

import pytest

from node import errors as E
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from node.mvcc.txn import validate_request
from tests.mvcc.conftest import Log

T, R = rq.CompareTarget, rq.CompareResult


def get(store: KVStore, key: bytes, rev: int = 0) -> rq.KeyValue | None:
    kvs = store.range(rq.RangeRequest(key, revision=rev)).kvs
    return kvs[0] if kvs else None


def test_recreated_key_starts_a_new_generation(store: KVStore, raft: Log) -> None:
    raft.apply(rq.PutRequest(b"k", b"1"))  # rev 2
    raft.apply(rq.PutRequest(b"k", b"2"))  # rev 3
    assert raft.apply(rq.DeleteRangeRequest(b"k")).revision == 4
    assert get(store, b"k") is None
    raft.apply(rq.PutRequest(b"k", b"3"))  # rev 5
    assert get(store, b"k") == rq.KeyValue(b"k", 5, 5, 1, b"3")
    # history is still readable generation by generation
    assert get(store, b"k", 3) == rq.KeyValue(b"k", 2, 3, 2, b"2")
    assert get(store, b"k", 4) is None
    assert get(store, b"k", 1) is None


def test_txn_with_several_puts_is_one_revision(store: KVStore, raft: Log) -> None:
    resp = raft.apply(
        rq.TxnRequest(
            success=[rq.PutRequest(b"a", b"1"), rq.PutRequest(b"b", b"2"), rq.RangeRequest(b"a")]
        )
    )
    assert resp.revision == 2
    assert resp.succeeded
    assert [r.revision for r in resp.responses] == [2, 2, 2]
    # the range inside the txn sees the txn's own put
    assert resp.responses[2].kvs == [rq.KeyValue(b"a", 2, 2, 1, b"1")]
    assert store.current_revision() == 2
    assert [kv.mod_revision for kv in store.range(rq.RangeRequest(b"a", b"c")).kvs] == [2, 2]


def test_writes_without_changes_do_not_consume_a_revision(store: KVStore, raft: Log) -> None:
    assert raft.apply(rq.DeleteRangeRequest(b"missing")) == rq.DeleteRangeResponse(revision=1)
    resp = raft.apply(rq.TxnRequest(success=[rq.RangeRequest(b"x"), rq.DeleteRangeRequest(b"y")]))
    assert resp.revision == 1
    assert store.current_revision() == 1


def test_txn_compares_on_every_target(store: KVStore, raft: Log) -> None:
    raft.apply(rq.LeaseGrantRequest(ttl=60, id=9))
    raft.apply(rq.PutRequest(b"k", b"v", lease=9))  # rev 2
    raft.apply(rq.PutRequest(b"k", b"w", lease=9))  # rev 3, version 2

    def succeeds(*cmps: rq.Compare) -> bool:
        return bool(raft.apply(rq.TxnRequest(compare=list(cmps))).succeeded)

    assert succeeds(rq.Compare(b"k", T.VERSION, R.EQUAL, version=2))
    assert succeeds(rq.Compare(b"k", T.VERSION, R.GREATER, version=1))
    assert succeeds(rq.Compare(b"k", T.CREATE, R.EQUAL, create_revision=2))
    assert succeeds(rq.Compare(b"k", T.MOD, R.LESS, mod_revision=4))
    assert succeeds(rq.Compare(b"k", T.LEASE, R.EQUAL, lease=9))
    assert succeeds(rq.Compare(b"k", T.VALUE, R.NOT_EQUAL, value=b"v"))
    assert not succeeds(rq.Compare(b"k", T.VALUE, R.GREATER, value=b"x"))
    # a missing key: version/create 0 tests absence, any VALUE compare fails
    assert succeeds(rq.Compare(b"nope", T.VERSION, R.EQUAL, version=0))
    assert succeeds(rq.Compare(b"nope", T.CREATE, R.EQUAL, create_revision=0))
    assert not succeeds(rq.Compare(b"nope", T.VALUE, R.NOT_EQUAL, value=b"x"))
    # a range compare needs every key to match
    raft.apply(rq.PutRequest(b"k2", b"w"))
    assert succeeds(rq.Compare(b"k", T.VALUE, R.EQUAL, value=b"w", range_end=b"l"))
    raft.apply(rq.PutRequest(b"k3", b"z"))
    assert not succeeds(rq.Compare(b"k", T.VALUE, R.EQUAL, value=b"w", range_end=b"l"))


def test_nested_txn_compares_see_the_state_before_the_txn(store: KVStore, raft: Log) -> None:
    inner = rq.TxnRequest(
        compare=[rq.Compare(b"k", T.VERSION, R.EQUAL, version=0)],
        success=[rq.PutRequest(b"inner", b"ran")],
    )
    resp = raft.apply(rq.TxnRequest(success=[rq.PutRequest(b"k", b"v"), inner]))
    # k did not exist before the txn, so the nested compare succeeded
    assert resp.responses[1] == rq.TxnResponse(
        revision=0, succeeded=True, responses=[rq.PutResponse(revision=2)]
    )
    assert get(store, b"inner") == rq.KeyValue(b"inner", 2, 2, 1, b"ran")


def test_failed_txn_check_writes_nothing(store: KVStore, raft: Log) -> None:
    err = raft.error(
        rq.TxnRequest(success=[rq.PutRequest(b"a", b"1"), rq.PutRequest(b"b", b"2", lease=77)])
    )
    assert isinstance(err, E.ErrLeaseNotFound)
    assert get(store, b"a") is None
    assert store.current_revision() == 1
    err = raft.error(rq.TxnRequest(success=[rq.RangeRequest(b"a", revision=50)]))
    assert isinstance(err, E.ErrFutureRev)
    err = raft.error(rq.TxnRequest(success=[rq.PutRequest(b"a", ignore_value=True)]))
    assert isinstance(err, E.ErrKeyNotFound)


def test_put_ignore_value_and_ignore_lease_keep_the_old_ones(store: KVStore, raft: Log) -> None:
    raft.apply(rq.LeaseGrantRequest(ttl=60, id=5))
    raft.apply(rq.PutRequest(b"k", b"v", lease=5))
    raft.apply(rq.PutRequest(b"k", ignore_value=True))  # keeps value, drops lease
    assert get(store, b"k") == rq.KeyValue(b"k", 2, 3, 2, b"v", 0)
    raft.apply(rq.PutRequest(b"k", b"new", lease=5))
    raft.apply(rq.PutRequest(b"k", b"newer", ignore_lease=True))
    assert get(store, b"k") == rq.KeyValue(b"k", 2, 5, 4, b"newer", 5)
    assert isinstance(raft.error(rq.PutRequest(b"zz", ignore_value=True)), E.ErrKeyNotFound)


def test_range_options(store: KVStore, raft: Log) -> None:
    for i, key in enumerate([b"a", b"b", b"c", b"d"]):
        raft.apply(rq.PutRequest(key, bytes([ord("z") - i]) * (i + 1)))
    raft.apply(rq.PutRequest(b"a", b"again"))  # a: version 2, mod 6

    def keys(resp: rq.RangeResponse) -> list[bytes]:
        return [kv.key for kv in resp.kvs]

    # limit + more + count of everything in range
    resp = store.range(rq.RangeRequest(b"a", b"\0", limit=2))
    assert keys(resp) == [b"a", b"b"]
    assert resp.more
    assert resp.count == 4
    resp = store.range(rq.RangeRequest(b"a", b"\0", limit=4))
    assert not resp.more
    assert resp.count == 4
    # range_end "\0" with key "\0": every key
    assert keys(store.range(rq.RangeRequest(b"\0", b"\0"))) == [b"a", b"b", b"c", b"d"]
    # [b, d)
    assert keys(store.range(rq.RangeRequest(b"b", b"d"))) == [b"b", b"c"]
    # sorting
    desc = rq.RangeRequest(b"a", b"\0", sort_order=rq.SortOrder.DESCEND, limit=3)
    resp = store.range(desc)
    assert keys(resp) == [b"d", b"c", b"b"]
    assert resp.more
    by_mod = store.range(
        rq.RangeRequest(b"a", b"\0", sort_target=rq.SortTarget.MOD)  # NONE -> ascending
    )
    assert keys(by_mod) == [b"b", b"c", b"d", b"a"]
    by_value = store.range(
        rq.RangeRequest(
            b"a", b"\0", sort_target=rq.SortTarget.VALUE, sort_order=rq.SortOrder.DESCEND
        )
    )
    assert keys(by_value) == [b"b", b"c", b"d", b"a"]  # yy > xxx > wwww > again
    by_version = store.range(
        rq.RangeRequest(b"a", b"\0", sort_target=rq.SortTarget.VERSION, sort_order=2, limit=1)
    )
    assert keys(by_version) == [b"a"]
    assert by_version.more
    # keys_only drops values, count_only drops kvs
    resp = store.range(rq.RangeRequest(b"a", b"c", keys_only=True))
    assert [kv.value for kv in resp.kvs] == [b"", b""]
    assert resp.kvs[0].version == 2
    # revision filters prune kvs (count stays etcd's total)
    resp = store.range(rq.RangeRequest(b"a", b"\0", min_mod_revision=4))
    assert keys(resp) == [b"a", b"c", b"d"]
    assert resp.count == 4
    resp = store.range(rq.RangeRequest(b"a", b"\0", max_create_revision=3))
    assert keys(resp) == [b"a", b"b"]
    # a historical range with the same options
    resp = store.range(rq.RangeRequest(b"a", b"\0", revision=3, limit=1))
    assert keys(resp) == [b"a"]
    assert resp.more
    assert resp.count == 2
    assert resp.kvs[0].value == b"z"


def test_compaction_keeps_latest_version_at_or_before_the_revision(
    store: KVStore, raft: Log
) -> None:
    raft.apply(rq.PutRequest(b"k", b"1"))  # 2
    raft.apply(rq.PutRequest(b"gone", b"x"))  # 3
    raft.apply(rq.PutRequest(b"k", b"2"))  # 4
    raft.apply(rq.DeleteRangeRequest(b"gone"))  # 5
    raft.apply(rq.PutRequest(b"k", b"3"))  # 6
    raft.apply(rq.CompactionRequest(5))
    assert store.compact_revision() == 5
    # reads at the compact revision still work and see the state at 5
    assert get(store, b"k", 5) == rq.KeyValue(b"k", 2, 4, 2, b"2")
    assert get(store, b"gone", 5) is None
    assert get(store, b"k") == rq.KeyValue(b"k", 2, 6, 3, b"3")
    with pytest.raises(E.ErrCompacted):
        store.range(rq.RangeRequest(b"k", revision=4))
    # compacting again at or below, or into the future, is refused
    assert isinstance(raft.error(rq.CompactionRequest(5)), E.ErrCompacted)
    assert isinstance(raft.error(rq.CompactionRequest(99)), E.ErrFutureRev)
    # versions before rev 5 that were superseded are gone from disk (rows 2 and 3)
    assert store.stats().compaction_keys_total == 2


def test_validate_request_matches_etcds_grpc_checks() -> None:
    with pytest.raises(E.ErrKeyNotProvided):
        validate_request(rq.PutRequest(b"", b"v"))
    with pytest.raises(E.ErrKeyNotProvided):
        validate_request(rq.RangeRequest(b""))
    with pytest.raises(E.ErrValueProvided):
        validate_request(rq.PutRequest(b"k", b"v", ignore_value=True))
    with pytest.raises(E.ErrLeaseProvided):
        validate_request(rq.PutRequest(b"k", lease=3, ignore_lease=True))
    with pytest.raises(E.ErrTooManyOps):
        validate_request(rq.TxnRequest(success=[rq.PutRequest(b"%d" % i) for i in range(129)]))
    validate_request(rq.TxnRequest(success=[rq.PutRequest(b"%d" % i) for i in range(128)]))
    with pytest.raises(E.ErrDuplicateKey):
        validate_request(rq.TxnRequest(success=[rq.PutRequest(b"a"), rq.PutRequest(b"a")]))
    with pytest.raises(E.ErrDuplicateKey):
        validate_request(
            rq.TxnRequest(success=[rq.DeleteRangeRequest(b"a", b"c"), rq.PutRequest(b"b")])
        )
    # the two branches of a nested txn may put the same key; overlapping deletes are fine
    nested = rq.TxnRequest(success=[rq.PutRequest(b"x")], failure=[rq.PutRequest(b"x")])
    validate_request(rq.TxnRequest(success=[nested, rq.DeleteRangeRequest(b"a", b"c")]))
    validate_request(
        rq.TxnRequest(success=[rq.DeleteRangeRequest(b"a", b"c"), rq.DeleteRangeRequest(b"b")])
    )
    with pytest.raises(E.ErrDuplicateKey):
        validate_request(rq.TxnRequest(success=[nested, rq.PutRequest(b"x")]))
    # success and failure are checked separately
    validate_request(rq.TxnRequest(success=[rq.PutRequest(b"a")], failure=[rq.PutRequest(b"a")]))


def test_read_only_txn_is_served_locally(store: KVStore, raft: Log) -> None:
    raft.apply(rq.PutRequest(b"k", b"v"))
    resp = store.txn_read(
        rq.TxnRequest(
            compare=[rq.Compare(b"k", T.VALUE, R.EQUAL, value=b"v")],
            success=[rq.RangeRequest(b"k")],
        )
    )
    assert resp.succeeded
    assert resp.revision == 2
    inner = resp.responses[0]
    assert isinstance(inner, rq.RangeResponse)
    assert inner.kvs[0].value == b"v"
    with pytest.raises(ValueError, match="read-only"):
        store.txn_read(rq.TxnRequest(success=[rq.PutRequest(b"k")]))
