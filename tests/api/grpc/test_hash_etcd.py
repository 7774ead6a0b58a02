"""HashKV: the bytes node/mvcc/hash.py hashes are the ones etcd 3.4 hashes.

The same writes (puts, a txn, a lease and its revoke, deletes, compactions) go to a real
etcd over gRPC and to a KVStore; hashed with etcd's CRC-32C, our bytes give etcd's
number at every revision asked, before and after compaction, including 3.4's rule for
what to keep below the compact revision and its case of no live key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from node.mvcc import requests as rq
from node.mvcc.hash import hash_kv_conn
from node.mvcc.store import KVStore
from tests.api.grpc.conftest import Etcd
from tests.mvcc.conftest import Log
from tests.mvcc.test_hash import crc32c

pytestmark = [pytest.mark.tools]
T = 10.0  # seconds: every call is bounded


def test_hash_kv_bytes_are_etcds_at_every_revision(etcd_grpc: Etcd, tmp_path: Path) -> None:
    etcd = etcd_grpc
    store = KVStore.open(str(tmp_path / "db"))
    log = Log(store)
    start = etcd.kv.Range(pb.RangeRequest(key=b"x"), timeout=T).header.revision
    assert start == store.current_revision() == 1, "needs a fresh etcd (etcd1 is per module)"
    lease = etcd.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=600), timeout=T).ID

    def put(key: bytes, value: bytes, lease_id: int = 0) -> None:
        etcd.kv.Put(pb.PutRequest(key=key, value=value, lease=lease_id), timeout=T)
        log.apply(rq.PutRequest(key=key, value=value, lease=lease_id))

    def delete(key: bytes, range_end: bytes = b"") -> None:
        etcd.kv.DeleteRange(pb.DeleteRangeRequest(key=key, range_end=range_end), timeout=T)
        log.apply(rq.DeleteRangeRequest(key=key, range_end=range_end))

    def compact(revision: int) -> None:
        etcd.kv.Compact(pb.CompactionRequest(revision=revision, physical=True), timeout=T)
        log.apply(rq.CompactionRequest(revision=revision))

    def same_hashes(*revisions: int) -> None:
        for rev in revisions:
            theirs = etcd.maintenance.HashKV(pb.HashKVRequest(revision=rev), timeout=T)
            ours = hash_kv_conn(store._db(), rev, crc32c)
            assert (ours.hash, ours.revision, ours.compact_revision) == (
                theirs.hash,
                theirs.header.revision,
                theirs.compact_revision,
            ), f"revision {rev}"

    try:
        log.apply(rq.LeaseGrantRequest(ttl=600, id=lease))
        put(b"a", b"1")  # 2
        put(b"b", b"2")  # 3
        put(b"a", b"3")  # 4
        put(b"d", b"leased", lease)  # 5
        delete(b"b")  # 6
        txn = pb.TxnRequest(
            success=[
                pb.RequestOp(request_put=pb.PutRequest(key=b"e", value=b"1")),
                pb.RequestOp(request_put=pb.PutRequest(key=b"f", value=b"")),
            ]
        )
        etcd.kv.Txn(txn, timeout=T)  # 7: two sub-revisions
        log.apply(rq.TxnRequest(success=[rq.PutRequest(b"e", b"1"), rq.PutRequest(b"f", b"")]))
        put(b"c", b"")  # 8
        etcd.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), timeout=T)  # 9: deletes d
        log.apply(rq.LeaseRevokeRequest(id=lease))
        put(b"a", b"4")  # 10
        same_hashes(0, 2, 5, 7, 9)
        compact(6)  # a tombstone (b) exactly at the compact revision
        same_hashes(0, 7, 9)
        compact(9)
        delete(b"a", b"\0")  # 11: no key is live any more
        same_hashes(0, 10)
    finally:
        store.close()
