"""etcd 3.4's limit with a sort target and no sort order: the first keys, then sorted.

etcd decides whether to fetch the whole range on the sort order the client *asked*;
a non-key target with order NONE sorts ascending, but only the first limit+1 keys by
key order (found side by side with etcd over gRPC, tests/api/grpc).
"""

from __future__ import annotations

from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log


def _keys(resp: rq.RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def test_a_target_without_order_sorts_only_the_first_keys(store: KVStore, raft: Log) -> None:
    for key, value in [(b"a", b"6"), (b"b", b"5"), (b"c", b"4"), (b"d", b"9"), (b"e", b"2")]:
        raft.apply(rq.PutRequest(key, value))
    by_value = rq.RangeRequest(b"a", b"\0", sort_target=rq.SortTarget.VALUE, limit=3)
    resp = store.range(by_value)
    # a..d fetched (limit + 1), sorted by value 4 5 6 9, cut to 3; e ("2") never seen
    assert _keys(resp) == [b"c", b"b", b"a"]
    assert (resp.more, resp.count) == (True, 5)


def test_a_target_with_an_order_sorts_the_whole_range(store: KVStore, raft: Log) -> None:
    for key, value in [(b"a", b"6"), (b"b", b"5"), (b"c", b"4"), (b"d", b"9"), (b"e", b"2")]:
        raft.apply(rq.PutRequest(key, value))
    asc = rq.RangeRequest(
        b"a", b"\0", sort_target=rq.SortTarget.VALUE, sort_order=rq.SortOrder.ASCEND, limit=3
    )
    resp = store.range(asc)
    assert _keys(resp) == [b"e", b"c", b"b"]
    assert (resp.more, resp.count) == (True, 5)
