"""Our stubs against a real etcd 3.4 over gRPC: each call decodes to the values etcd meant.

Every test asserts at least one decoded field that would come out wrong (zero, empty or
another field's value) if our .proto gave a field the wrong number or type. Keys are
prefixed by test name because the etcd member is shared by the package.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.mvccpb import kv_pb2
from etcdproto.gen.v3electionpb import v3election_pb2 as election_pb
from etcdproto.gen.v3lockpb import v3lock_pb2 as lock_pb
from lab.etcd_cluster import EtcdCluster
from tests.api.grpc.conftest import Etcd

pytestmark = [pytest.mark.tools]
T = 10.0  # seconds: every call is bounded


def _put(
    etcd: Etcd, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False
) -> pb.PutResponse:
    # proto3 scalars: 0 and false are the unset fields, so the defaults send nothing extra
    req = pb.PutRequest(key=key, value=value, lease=lease, prev_kv=prev_kv)
    resp: pb.PutResponse = etcd.kv.Put(req, timeout=T)
    return resp


def test_put_then_range_decodes_value_revisions_and_count(etcd_grpc: Etcd) -> None:
    first = _put(etcd_grpc, b"/range/a", b"one")
    second = _put(etcd_grpc, b"/range/a", b"two", prev_kv=True)
    _put(etcd_grpc, b"/range/b", b"three")
    assert second.prev_kv.value == b"one"
    assert second.header.revision == first.header.revision + 1

    got = etcd_grpc.kv.Range(
        pb.RangeRequest(key=b"/range/", range_end=b"/range0", limit=1), timeout=T
    )
    assert got.count == 2
    assert got.more
    [kv] = got.kvs
    assert (kv.key, kv.value, kv.version) == (b"/range/a", b"two", 2)
    assert kv.create_revision == first.header.revision
    assert kv.mod_revision == second.header.revision
    assert got.header.revision == second.header.revision + 1
    assert got.header.cluster_id != 0
    assert got.header.raft_term >= 1


def test_txn_compare_chooses_the_branch(etcd_grpc: Etcd) -> None:
    put = _put(etcd_grpc, b"/txn/k", b"v1")
    mod = pb.Compare(
        key=b"/txn/k",
        target=pb.Compare.MOD,
        result=pb.Compare.EQUAL,
        mod_revision=put.header.revision,
    )
    then = pb.RequestOp(request_put=pb.PutRequest(key=b"/txn/k", value=b"v2"))
    orelse = pb.RequestOp(request_range=pb.RangeRequest(key=b"/txn/k"))
    won = etcd_grpc.kv.Txn(
        pb.TxnRequest(compare=[mod], success=[then], failure=[orelse]), timeout=T
    )
    assert won.succeeded
    assert won.responses[0].WhichOneof("response") == "response_put"

    value = pb.Compare(key=b"/txn/k", target=pb.Compare.VALUE, result=pb.Compare.EQUAL, value=b"v1")
    lost = etcd_grpc.kv.Txn(
        pb.TxnRequest(compare=[value], success=[then], failure=[orelse]), timeout=T
    )
    assert not lost.succeeded
    assert lost.responses[0].response_range.kvs[0].value == b"v2"
    assert lost.responses[0].response_range.kvs[0].version == 2


def test_delete_range_returns_the_deleted_keys(etcd_grpc: Etcd) -> None:
    _put(etcd_grpc, b"/del/a", b"x")
    _put(etcd_grpc, b"/del/b", b"y")
    got = etcd_grpc.kv.DeleteRange(
        pb.DeleteRangeRequest(key=b"/del/", range_end=b"/del0", prev_kv=True), timeout=T
    )
    assert got.deleted == 2
    assert [(kv.key, kv.value) for kv in got.prev_kvs] == [(b"/del/a", b"x"), (b"/del/b", b"y")]
    assert etcd_grpc.kv.Range(pb.RangeRequest(key=b"/del/a"), timeout=T).count == 0


def test_lease_grant_and_time_to_live(etcd_grpc: Etcd) -> None:
    lease = etcd_grpc.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60), timeout=T)
    assert lease.ID != 0
    assert lease.TTL == 60
    assert lease.error == ""
    _put(etcd_grpc, b"/lease/k", b"v", lease=lease.ID)
    assert etcd_grpc.kv.Range(pb.RangeRequest(key=b"/lease/k"), timeout=T).kvs[0].lease == lease.ID

    ttl = etcd_grpc.lease.LeaseTimeToLive(
        pb.LeaseTimeToLiveRequest(ID=lease.ID, keys=True), timeout=T
    )
    assert ttl.ID == lease.ID
    assert ttl.grantedTTL == 60
    assert 0 < ttl.TTL <= 60
    assert list(ttl.keys) == [b"/lease/k"]
    etcd_grpc.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease.ID), timeout=T)


def test_member_list_names_the_member(etcd_grpc: Etcd, etcd1: EtcdCluster) -> None:
    got = etcd_grpc.cluster.MemberList(pb.MemberListRequest(), timeout=T)
    [member] = got.members
    assert member.name == etcd1.members[0].name
    assert list(member.clientURLs) == [etcd1.members[0].client_url]
    assert list(member.peerURLs) == [etcd1.members[0].peer_url]
    assert member.ID == got.header.member_id
    assert not member.isLearner


def test_status_reports_version_and_leader(etcd_grpc: Etcd) -> None:
    got = etcd_grpc.maintenance.Status(pb.StatusRequest(), timeout=T)
    assert got.version.startswith("3.4.")
    assert got.leader == got.header.member_id
    assert got.raftTerm == got.header.raft_term
    assert got.raftIndex >= got.raftAppliedIndex > 0
    assert got.dbSize >= got.dbSizeInUse > 0


def _requests(outbox: queue.Queue[pb.WatchRequest | None]) -> Iterator[pb.WatchRequest]:
    while (request := outbox.get(timeout=T)) is not None:
        yield request


def test_watch_stream_delivers_a_put_event(etcd_grpc: Etcd) -> None:
    _put(etcd_grpc, b"/watch/k", b"old")
    outbox: queue.Queue[pb.WatchRequest | None] = queue.Queue()
    create = pb.WatchCreateRequest(key=b"/watch/", range_end=b"/watch0", prev_kv=True, watch_id=7)
    outbox.put(pb.WatchRequest(create_request=create))
    stream = etcd_grpc.watch.Watch(_requests(outbox), timeout=T)
    try:
        created = next(stream)
        assert created.created
        assert created.watch_id == 7
        put = _put(etcd_grpc, b"/watch/k", b"new")
        got = next(stream)
        assert got.watch_id == 7
        [event] = got.events
        assert event.type == kv_pb2.Event.PUT
        assert (event.kv.key, event.kv.value) == (b"/watch/k", b"new")
        assert event.kv.mod_revision == put.header.revision
        assert event.prev_kv.value == b"old"
    finally:
        outbox.put(None)
        stream.cancel()


def test_lock_then_unlock(etcd_grpc: Etcd) -> None:
    lease = etcd_grpc.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30), timeout=T)
    held = etcd_grpc.lock.Lock(lock_pb.LockRequest(name=b"/lock/m", lease=lease.ID), timeout=T)
    assert held.key.startswith(b"/lock/m/")
    [owner] = etcd_grpc.kv.Range(pb.RangeRequest(key=held.key), timeout=T).kvs
    assert owner.lease == lease.ID
    assert held.header.revision == owner.mod_revision
    etcd_grpc.lock.Unlock(lock_pb.UnlockRequest(key=held.key), timeout=T)
    assert etcd_grpc.kv.Range(pb.RangeRequest(key=held.key), timeout=T).count == 0
    etcd_grpc.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease.ID), timeout=T)


def test_election_campaign_then_leader(etcd_grpc: Etcd) -> None:
    lease = etcd_grpc.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30), timeout=T)
    won = etcd_grpc.election.Campaign(
        election_pb.CampaignRequest(name=b"/elect/e", lease=lease.ID, value=b"me"), timeout=T
    )
    assert won.leader.name == b"/elect/e"
    assert won.leader.key.startswith(b"/elect/e/")
    assert won.leader.lease == lease.ID
    assert won.leader.rev > 0
    now = etcd_grpc.election.Leader(election_pb.LeaderRequest(name=b"/elect/e"), timeout=T)
    assert (now.kv.key, now.kv.value) == (won.leader.key, b"me")
    assert now.kv.create_revision == won.leader.rev
    assert now.kv.lease == lease.ID
    etcd_grpc.election.Resign(election_pb.ResignRequest(leader=won.leader), timeout=T)
    etcd_grpc.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease.ID), timeout=T)


def test_range_at_a_compacted_revision_is_out_of_range(etcd_grpc: Etcd) -> None:
    old = _put(etcd_grpc, b"/compact/k", b"a").header.revision
    new = _put(etcd_grpc, b"/compact/k", b"b").header.revision
    etcd_grpc.kv.Compact(pb.CompactionRequest(revision=new, physical=True), timeout=T)
    with pytest.raises(grpc.RpcError) as caught:
        etcd_grpc.kv.Range(pb.RangeRequest(key=b"/compact/k", revision=old), timeout=T)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert caught.value.details() == "etcdserver: mvcc: required revision has been compacted"
