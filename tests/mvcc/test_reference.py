"""The reference transcript from real etcd 3.4.23, replayed against the state machine.

/work/shared/reference/etcd-3.4-gateway-examples.md: same requests in the same
order on a fresh store must give the same revisions, versions and values.
"""

from __future__ import annotations

import pytest

from node.errors import ErrCompacted, ErrFutureRev, ErrLeaseNotFound
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log

FOO, BAR, BAZ, FOP, A = b"foo", b"bar", b"baz", b"fop", b"a"


def kv(
    key: bytes, create: int, mod: int, version: int, value: bytes, lease: int = 0
) -> rq.KeyValue:
    return rq.KeyValue(key, create, mod, version, value, lease)


def test_reference_transcript_matches_etcd(store: KVStore, raft: Log) -> None:
    # put -> revision 2 (an empty etcd is at revision 1)
    assert raft.apply(rq.PutRequest(FOO, BAR)) == rq.PutResponse(revision=2)
    # put again with prev_kv
    assert raft.apply(rq.PutRequest(FOO, BAZ, prev_kv=True)) == rq.PutResponse(
        revision=3, prev_kv=kv(FOO, 2, 2, 1, BAR)
    )
    # range one key
    assert store.range(rq.RangeRequest(FOO)) == rq.RangeResponse(
        revision=3, kvs=[kv(FOO, 2, 3, 2, BAZ)], count=1
    )
    # range missing key: header only
    assert store.range(rq.RangeRequest(A)) == rq.RangeResponse(revision=3)
    # prefix foo (range_end = prefix + 1)
    assert store.range(rq.RangeRequest(FOO, FOP)) == rq.RangeResponse(
        revision=3, kvs=[kv(FOO, 2, 3, 2, BAZ)], count=1
    )
    # count_only
    assert store.range(rq.RangeRequest(FOO, FOP, count_only=True)) == rq.RangeResponse(
        revision=3, count=1
    )
    # serializable reads the same local state
    assert store.range(rq.RangeRequest(FOO, serializable=True)).kvs == [kv(FOO, 2, 3, 2, BAZ)]
    # at old revision 2: header revision stays the current one
    assert store.range(rq.RangeRequest(FOO, revision=2)) == rq.RangeResponse(
        revision=3, kvs=[kv(FOO, 2, 2, 1, BAR)], count=1
    )
    # txn compare value then put
    swap = rq.TxnRequest(
        compare=[rq.Compare(FOO, rq.CompareTarget.VALUE, rq.CompareResult.EQUAL, value=BAZ)],
        success=[rq.PutRequest(FOO, BAR)],
        failure=[rq.RangeRequest(FOO)],
    )
    assert raft.apply(swap) == rq.TxnResponse(
        revision=4, succeeded=True, responses=[rq.PutResponse(revision=4)]
    )
    # txn compare fails: failure branch's range, nothing written
    fail = rq.TxnRequest(
        compare=[rq.Compare(FOO, rq.CompareTarget.VALUE, rq.CompareResult.EQUAL, value=b"xxx")],
        success=[rq.PutRequest(FOO, BAR)],
        failure=[rq.RangeRequest(FOO)],
    )
    assert raft.apply(fail) == rq.TxnResponse(
        revision=4,
        succeeded=False,
        responses=[rq.RangeResponse(revision=4, kvs=[kv(FOO, 2, 4, 3, BAR)], count=1)],
    )
    # deleterange with prev_kv
    assert raft.apply(rq.DeleteRangeRequest(FOO, prev_kv=True)) == rq.DeleteRangeResponse(
        revision=5, deleted=1, prev_kvs=[kv(FOO, 2, 4, 3, BAR)]
    )
    # lease grant: no new revision
    assert raft.apply(rq.LeaseGrantRequest(ttl=30, id=7587)) == rq.LeaseGrantResponse(
        revision=5, id=7587, ttl=30
    )
    # put with lease
    assert raft.apply(rq.PutRequest(A, BAR, lease=7587)) == rq.PutResponse(revision=6)
    assert store.lease_keys(7587) == [A]
    assert store.lease_ids() == [7587]
    # revoke deletes the attached key in a new revision
    assert raft.apply(rq.LeaseRevokeRequest(7587)) == rq.LeaseRevokeResponse(revision=7)
    assert store.range(rq.RangeRequest(A)).kvs == []
    # revoking again: lease not found
    assert isinstance(raft.error(rq.LeaseRevokeRequest(7587)), ErrLeaseNotFound)
    # compaction at 3, then reads below it are compacted, above current are future
    assert raft.apply(rq.CompactionRequest(3)) == rq.CompactionResponse(revision=7)
    with pytest.raises(ErrCompacted, match="required revision has been compacted"):
        store.range(rq.RangeRequest(FOO, revision=2))
    with pytest.raises(ErrFutureRev, match="required revision is a future revision"):
        store.range(rq.RangeRequest(FOO, revision=1000))
    # unknown lease on put
    assert str(raft.error(rq.PutRequest(FOO, BAR, lease=12345))) == (
        "etcdserver: requested lease not found"
    )
    # a put after all that: revision 8, a new generation (create 8, version 1)
    assert raft.apply(rq.PutRequest(FOO, BAR)) == rq.PutResponse(revision=8)
    assert store.range(rq.RangeRequest(FOO)).kvs == [kv(FOO, 8, 8, 1, BAR)]
    assert store.alarms() == []
