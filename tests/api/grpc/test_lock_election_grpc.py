"""v3lock and v3election over gRPC, each test on raftmon and on etcd 3.4.

etcd's half is the spec; raftmon's serves the same calls through node/api/grpc/concurrency.py.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.etcdserverpb import rpc_pb2_grpc
from etcdproto.gen.v3electionpb import v3election_pb2 as election_pb
from etcdproto.gen.v3electionpb import v3election_pb2_grpc
from etcdproto.gen.v3lockpb import v3lock_pb2 as lock_pb
from etcdproto.gen.v3lockpb import v3lock_pb2_grpc
from tests.cluster.etcdjson import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.tools]
T = 30.0  # seconds: every call and wait is bounded


@dataclass
class Stubs:
    kv: rpc_pb2_grpc.KVStub
    lease: rpc_pb2_grpc.LeaseStub
    lock: v3lock_pb2_grpc.LockStub
    election: v3election_pb2_grpc.ElectionStub


@pytest.fixture(params=["raftmon", "etcd"])
def stubs(request: pytest.FixtureRequest, both: dict[str, str]) -> Iterator[Stubs]:
    with grpc.insecure_channel(urlsplit(both[request.param]).netloc) as channel:
        grpc.channel_ready_future(channel).result(timeout=T)
        yield Stubs(
            kv=rpc_pb2_grpc.KVStub(channel),
            lease=rpc_pb2_grpc.LeaseStub(channel),
            lock=v3lock_pb2_grpc.LockStub(channel),
            election=v3election_pb2_grpc.ElectionStub(channel),
        )


def keys_under(s: Stubs, prefix: bytes) -> list[bytes]:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    got = s.kv.Range(
        pb.RangeRequest(key=prefix, range_end=end, sort_target=pb.RangeRequest.CREATE), timeout=T
    )
    return [kv.key for kv in got.kvs]


def waiters(s: Stubs, prefix: bytes, count: int) -> list[bytes]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: len(keys := keys_under(s, prefix)) == count and keys,
        timeout=T,
        what=f"{count} keys under {prefix!r}",
    )


def test_a_second_lock_is_granted_when_the_first_is_unlocked(stubs: Stubs) -> None:
    first = stubs.lock.Lock(lock_pb.LockRequest(name=b"g/contend"), timeout=T)
    second = stubs.lock.Lock.future(lock_pb.LockRequest(name=b"g/contend"), timeout=T)
    keys = waiters(stubs, b"g/contend/", 2)
    assert not second.done()
    stubs.lock.Unlock(lock_pb.UnlockRequest(key=first.key), timeout=T)
    got = second.result(timeout=T)
    assert got.key == keys[1]
    assert got.header.revision > first.header.revision
    stubs.lock.Unlock(lock_pb.UnlockRequest(key=got.key), timeout=T)


def test_a_cancelled_lock_withdraws_its_key(stubs: Stubs) -> None:
    first = stubs.lock.Lock(lock_pb.LockRequest(name=b"g/cancel"), timeout=T)
    second = stubs.lock.Lock.future(lock_pb.LockRequest(name=b"g/cancel"), timeout=T)
    waiters(stubs, b"g/cancel/", 2)
    second.cancel()
    waiters(stubs, b"g/cancel/", 1)
    stubs.lock.Unlock(lock_pb.UnlockRequest(key=first.key), timeout=T)


def _code_and_text(call: Any, *args: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=T)
    err: Any = caught.value
    return err.code(), err.details()


def test_errors_have_etcds_codes_and_texts(stubs: Stubs) -> None:
    unknown = grpc.StatusCode.UNKNOWN
    assert _code_and_text(stubs.lock.Lock, lock_pb.LockRequest(name=b"g/e", lease=999)) == (
        unknown,
        "etcdserver: requested lease not found",
    )
    assert _code_and_text(stubs.lock.Unlock, lock_pb.UnlockRequest()) == (
        unknown,
        "etcdserver: key is not provided",
    )
    assert _code_and_text(stubs.election.Leader, election_pb.LeaderRequest(name=b"g/none")) == (
        unknown,
        "election: no leader",
    )
    assert _code_and_text(stubs.election.Proclaim, election_pb.ProclaimRequest(value=b"v")) == (
        unknown,
        '"leader" field must be provided',
    )
    assert _code_and_text(stubs.election.Resign, election_pb.ResignRequest()) == (
        unknown,
        '"leader" field must be provided',
    )


def test_campaign_proclaim_observe_and_resign(stubs: Stubs) -> None:
    name = b"g/elect"
    seen: list[election_pb.LeaderResponse] = []
    arrived = threading.Condition()
    observe = stubs.election.Observe(election_pb.LeaderRequest(name=name), timeout=T)

    def read() -> None:
        try:
            for resp in observe:
                with arrived:
                    seen.append(resp)
                    arrived.notify_all()
        except grpc.RpcError:
            pass  # cancelled at the end

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        lease = stubs.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60), timeout=T).ID
        a = stubs.election.Campaign(
            election_pb.CampaignRequest(name=name, lease=lease, value=b"a1"), timeout=T
        ).leader
        assert (a.name, a.key, a.lease) == (name, name + b"/" + b"%x" % lease, lease)
        with concurrent.futures.ThreadPoolExecutor(1):
            b = stubs.election.Campaign.future(
                election_pb.CampaignRequest(name=name, value=b"b1"), timeout=T
            )
            waiters(stubs, name + b"/", 2)
            assert not b.done()
            stubs.election.Proclaim(election_pb.ProclaimRequest(leader=a, value=b"a2"), timeout=T)
            now = stubs.election.Leader(election_pb.LeaderRequest(name=name), timeout=T)
            assert (now.kv.key, now.kv.value) == (a.key, b"a2")
            stubs.election.Resign(election_pb.ResignRequest(leader=a), timeout=T)
            b_leader = b.result(timeout=T).leader
        assert _code_and_text(
            stubs.election.Proclaim, election_pb.ProclaimRequest(leader=a, value=b"a3")
        ) == (grpc.StatusCode.UNKNOWN, "election: not leader")
        with arrived:
            assert arrived.wait_for(lambda: len(seen) >= 3, timeout=T), seen
        assert [r.kv.value for r in seen[:3]] == [b"a1", b"a2", b"b1"]
        stubs.election.Resign(election_pb.ResignRequest(leader=b_leader), timeout=T)
        stubs.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), timeout=T)
    finally:
        observe.cancel()
        reader.join(timeout=T)
