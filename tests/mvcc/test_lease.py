"""Leases: replicated grant/revoke in the store, leader-side deadlines in the Lessor."""

from __future__ import annotations

import pytest

from node.errors import ErrLeaseExists, ErrLeaseTTLTooLarge, ErrNotLeader
from node.mvcc import requests as rq
from node.mvcc.lease import LeaseIDGenerator, Lessor
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log


def test_leader_expires_leases_with_an_injected_clock(store: KVStore, raft: Log) -> None:
    lessor = Lessor(store)
    lessor.promote(now=100.0)
    raft.apply(rq.LeaseGrantRequest(ttl=10, id=1))
    raft.apply(rq.LeaseGrantRequest(ttl=30, id=2))
    raft.apply(rq.PutRequest(b"session", b"x", lease=1))
    assert lessor.expired(now=101.0) == []  # first clock reading arms the new leases
    assert lessor.time_to_live(1, now=104.0, keys=True) == rq.LeaseTimeToLiveResponse(
        revision=2, id=1, ttl=7, granted_ttl=10, keys=[b"session"]
    )
    assert lessor.expired(now=110.5) == []
    assert lessor.expired(now=111.0) == [1]
    # not proposed again until the retry interval passes (the revoke may be in flight)
    assert lessor.expired(now=112.0) == []
    assert lessor.expired(now=114.0) == [1]
    # the leader proposes the revoke; applying it deletes the key in one revision
    assert raft.apply(rq.LeaseRevokeRequest(1)).revision == 3
    assert store.range(rq.RangeRequest(b"session")).kvs == []
    assert lessor.expired(now=200.0) == [2]
    assert lessor.time_to_live(1, now=200.0).ttl == -1


def test_keepalive_moves_only_the_leaders_deadline(store: KVStore, raft: Log) -> None:
    lessor = Lessor(store)
    raft.apply(rq.LeaseGrantRequest(ttl=10, id=5))
    with pytest.raises(ErrNotLeader):
        lessor.keepalive(5, now=0.0)
    assert lessor.expired(now=1e9) == []  # followers never expire anything
    lessor.promote(now=0.0)
    assert lessor.keepalive(5, now=8.0) == 10
    assert lessor.expired(now=12.0) == []
    assert lessor.expired(now=18.0) == [5]
    assert lessor.keepalive_response(404, now=18.0).ttl == 0  # etcd: TTL 0, not an error


def test_promote_refreshes_every_deadline(store: KVStore, raft: Log) -> None:
    old_leader = Lessor(store)
    old_leader.promote(now=0.0)
    raft.apply(rq.LeaseGrantRequest(ttl=10, id=1))
    old_leader.expired(now=0.0)
    old_leader.demote()
    assert old_leader.expired(now=50.0) == []
    # this member becomes leader much later: the lease gets a full TTL from now
    old_leader.promote(now=50.0)
    assert old_leader.remaining(1, now=55.0) == 5
    assert old_leader.expired(now=59.0) == []
    assert old_leader.expired(now=60.0) == [1]


def test_lessor_reloads_from_the_store_after_a_restart(db_path: str) -> None:
    store = KVStore.open(db_path)
    Log(store).apply(rq.LeaseGrantRequest(ttl=5, id=3))
    store.close()
    store = KVStore.open(db_path)
    try:
        lessor = Lessor(store)
        assert lessor.leases().leases == [3]
        lessor.promote(now=0.0)
        assert lessor.expired(now=5.0) == [3]
    finally:
        store.close()


def test_grant_rules(store: KVStore, raft: Log) -> None:
    assert raft.apply(rq.LeaseGrantRequest(ttl=1, id=1)).ttl == 2  # etcd's minimum TTL
    assert isinstance(raft.error(rq.LeaseGrantRequest(ttl=5, id=1)), ErrLeaseExists)
    big = rq.LeaseGrantRequest(ttl=9_000_000_001, id=2)
    assert isinstance(raft.error(big), ErrLeaseTTLTooLarge)
    # id 0 at apply: every member derives the same id from the entry index
    chosen = raft.apply(rq.LeaseGrantRequest(ttl=5)).id
    assert chosen > 0
    assert chosen in store.lease_ids()


def test_lease_id_generator_is_unique_and_positive() -> None:
    gen = LeaseIDGenerator(member_id=0xFFFF_FFFF_FFFF_FFFF, now_unix_ms=1_700_000_000_000)
    ids = [gen.next() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(0 < i < 2**63 for i in ids)


def test_a_lease_runs_its_ttl_from_the_apply_that_granted_it(store: KVStore, raft: Log) -> None:
    """The Applier stamps new leases right after their apply (as etcd's Grant reads the
    clock), so a 2 s lease is not kept until up to one expiry check after its TTL."""
    lessor = Lessor(store)
    lessor.promote(now=100.0)
    raft.apply(rq.LeaseGrantRequest(ttl=2, id=1))
    lessor.start_deadlines(now=100.2)  # the apply's time
    assert lessor.expired(now=102.1) == []
    assert lessor.expired(now=102.2) == [1]
    follower = Lessor(store)  # not primary: holds no deadlines, expires nothing
    follower.start_deadlines(now=100.2)
    assert follower.expired(now=500.0) == []
