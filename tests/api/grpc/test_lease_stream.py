"""Leases over gRPC, each scenario run on raftmon1 and on etcd1 with one expectation:
the LeaseKeepAlive stream, revoke, TimeToLive with keys and Leases."""

from __future__ import annotations

import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from tests.api.grpc.conftest import Etcd
from tests.api.grpc.wire import Session, T

pytestmark = [pytest.mark.tools]

KeepAlive = Session[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]
UNKNOWN_LEASE = 0x7A7A7A  # no test grants it


def _grant(server: Etcd, ttl: int = 60) -> int:
    granted = server.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=ttl), timeout=T)
    assert (granted.TTL, granted.error) == (ttl, "")
    return int(granted.ID)


def _keep_alive(server: Etcd) -> KeepAlive:
    return Session(server.lease.LeaseKeepAlive)


def test_keep_alives_are_answered_in_order_with_the_granted_ttl(server: Etcd) -> None:
    a, b = _grant(server, 60), _grant(server, 90)
    with _keep_alive(server) as stream:
        for lease in (a, b, a, a, b):
            stream.send(pb.LeaseKeepAliveRequest(ID=lease))
        answers = [stream.recv() for _ in range(5)]
    assert [(r.ID, r.TTL) for r in answers] == [(a, 60), (b, 90), (a, 60), (a, 60), (b, 90)]
    assert all(r.header.revision > 0 and r.header.member_id != 0 for r in answers)


def test_keep_alive_of_an_unknown_lease_answers_ttl_zero_and_the_stream_goes_on(
    server: Etcd,
) -> None:
    known = _grant(server)
    with _keep_alive(server) as stream:
        stream.send(pb.LeaseKeepAliveRequest(ID=UNKNOWN_LEASE))
        unknown = stream.recv()
        stream.send(pb.LeaseKeepAliveRequest(ID=known))
        alive = stream.recv()
    assert (unknown.ID, unknown.TTL) == (UNKNOWN_LEASE, 0)
    assert (alive.ID, alive.TTL) == (known, 60)


def test_keep_alive_stream_ends_cleanly_when_the_client_ends_its_side(server: Etcd) -> None:
    lease = _grant(server)
    stream = _keep_alive(server)
    try:
        stream.send(pb.LeaseKeepAliveRequest(ID=lease))
        assert stream.recv().ID == lease
        assert stream.end() is None  # status OK
    finally:
        stream.close()


def test_revoke_deletes_the_keys_and_time_to_live_then_answers_minus_one(server: Etcd) -> None:
    lease = _grant(server)
    for key in (b"/lrevoke/a", b"/lrevoke/b"):
        server.kv.Put(pb.PutRequest(key=key, value=b"v", lease=lease), timeout=T)
    before = server.kv.Range(pb.RangeRequest(key=b"/lrevoke/a"), timeout=T).header.revision
    revoked = server.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), timeout=T)
    assert revoked.header.revision == before + 1  # one revision deletes both keys
    got = server.kv.Range(pb.RangeRequest(key=b"/lrevoke/", range_end=b"/lrevoke0"), timeout=T)
    assert got.count == 0
    ttl = server.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease, keys=True), timeout=T)
    assert (ttl.ID, ttl.TTL, ttl.grantedTTL, list(ttl.keys)) == (lease, -1, 0, [])


def test_time_to_live_with_keys_names_every_attached_key(server: Etcd) -> None:
    lease = _grant(server, 120)
    for key in (b"/lttl/b", b"/lttl/a", b"/lttl/c"):
        server.kv.Put(pb.PutRequest(key=key, value=b"v", lease=lease), timeout=T)
    server.kv.DeleteRange(pb.DeleteRangeRequest(key=b"/lttl/c"), timeout=T)  # detaches it
    ttl = server.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease, keys=True), timeout=T)
    assert (ttl.ID, ttl.grantedTTL) == (lease, 120)
    assert 0 < ttl.TTL <= 120
    assert sorted(ttl.keys) == [b"/lttl/a", b"/lttl/b"]  # etcd's order is its map's
    bare = server.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease), timeout=T)
    assert list(bare.keys) == []
    server.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), timeout=T)


def test_leases_lists_granted_and_forgets_revoked(server: Etcd) -> None:
    kept, gone = _grant(server), _grant(server)
    server.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=gone), timeout=T)
    listed = {s.ID for s in server.lease.LeaseLeases(pb.LeaseLeasesRequest(), timeout=T).leases}
    assert kept in listed
    assert gone not in listed


def test_a_client_chosen_lease_id_is_kept(server: Etcd) -> None:
    chosen = 0x5EED0001
    granted = server.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30, ID=chosen), timeout=T)
    assert (granted.ID, granted.TTL) == (chosen, 30)
    server.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=chosen), timeout=T)
