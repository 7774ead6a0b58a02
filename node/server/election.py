"""etcd's v3election service: clientv3's Election, run by the member for its clients.

A candidate's key is `<name>/<lease hex>` with its announcement as the value; the
leader is the oldest key under `<name>/` (node/server/concurrency.py has the recipe).
Campaign blocks until the caller leads and answers a LeaderKey, the proof that
Proclaim and Resign check: they act only while the key still has the creation
revision the LeaderKey names, so a leader whose lease expired (its key deleted, maybe
re-created by a new campaign) cannot speak for the next one. Leader reads the current
announcement; Observe streams every announcement, leader after leader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from node import errors as E
from node.mvcc import requests as rq
from node.server import concurrency as cc

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from node.server.kv_service import KVService


@dataclass(slots=True)
class LeaderKey:
    """v3electionpb.LeaderKey: which election, the leader's key, its create revision, lease."""

    name: bytes
    key: bytes
    rev: int
    lease: int


@dataclass(slots=True)
class CampaignResponse:
    revision: int
    leader: LeaderKey


@dataclass(slots=True)
class LeaderResponse:
    """v3electionpb.LeaderResponse: the header's revision and the leader's key-value."""

    revision: int
    kv: rq.KeyValue


def _is_creator(leader: LeaderKey) -> rq.Compare:
    """True while the leader's key exists with the creation revision the LeaderKey names."""
    return rq.Compare(key=leader.key, target=rq.CompareTarget.CREATE, create_revision=leader.rev)


async def campaign(svc: KVService, name: bytes, lease: int, value: bytes) -> CampaignResponse:
    """Stand in election `name` with `value` under `lease` (0: a new 60 s lease); return
    once elected.

    A lease that already stands keeps its place and has its value re-announced. The
    header is the first txn's, as etcd's (it does not move while the candidate waits).
    A campaign cancelled while waiting withdraws its key.
    """
    with cc.as_client():
        lease = await cc.session_lease(svc, lease)
        prefix = name + b"/"
        key = cc.waiter_key(prefix, lease)
        resp = await svc.txn(
            rq.TxnRequest(
                compare=[rq.Compare(key=key, target=rq.CompareTarget.CREATE, create_revision=0)],
                success=[rq.PutRequest(key=key, value=value, lease=lease)],
                failure=[rq.RangeRequest(key=key)],
            )
        )
    leader = LeaderKey(name=name, key=key, rev=resp.revision, lease=lease)
    if not resp.succeeded:
        mine = resp.responses[0]
        assert isinstance(mine, rq.RangeResponse)
        leader.rev = mine.kvs[0].create_revision
        if mine.kvs[0].value != value:
            try:
                await _proclaim(svc, leader, value)
            except E.ErrElectionNotLeader:
                raise  # the key is gone already: nothing to withdraw
            except BaseException:
                await cc.cleanup_on_cancel(lambda: _resign(svc, leader))
                raise
    try:
        await cc.wait_deletes(svc, prefix, leader.rev - 1)
    except BaseException as err:
        if not isinstance(err, Exception):  # cancelled: the caller is gone
            await cc.cleanup_on_cancel(lambda: _resign(svc, leader))
        raise
    return CampaignResponse(resp.revision, leader)


async def proclaim(svc: KVService, leader: LeaderKey | None, value: bytes) -> int:
    """Announce `value` as the leader `leader` names; the answer's header revision."""
    if leader is None:
        raise E.ErrMissingLeaderKey
    with cc.as_client():
        lease = await cc.session_lease(svc, leader.lease)
    return await _proclaim(svc, LeaderKey(leader.name, leader.key, leader.rev, lease), value)


async def _proclaim(svc: KVService, leader: LeaderKey, value: bytes) -> int:
    with cc.as_client():
        resp = await svc.txn(
            rq.TxnRequest(
                compare=[_is_creator(leader)],
                success=[rq.PutRequest(key=leader.key, value=value, lease=leader.lease)],
            )
        )
    if not resp.succeeded:
        raise E.ErrElectionNotLeader
    return resp.revision


async def resign(svc: KVService, leader: LeaderKey | None) -> int:
    """Give up the leadership `leader` names (nothing happens if it is not current)."""
    if leader is None:
        raise E.ErrMissingLeaderKey
    with cc.as_client():
        await cc.session_lease(svc, leader.lease)
    return await _resign(svc, leader)


async def _resign(svc: KVService, leader: LeaderKey) -> int:
    with cc.as_client():
        resp = await svc.txn(
            rq.TxnRequest(
                compare=[_is_creator(leader)], success=[rq.DeleteRangeRequest(key=leader.key)]
            )
        )
    return resp.revision


async def leader(svc: KVService, name: bytes) -> LeaderResponse:
    """The current leader's key-value, or etcd's `election: no leader`."""
    resp = await cc.read(svc, cc.first_created(name + b"/"))
    if not resp.kvs:
        raise E.ErrElectionNoLeader
    return LeaderResponse(resp.revision, resp.kvs[0])


async def observe(svc: KVService, name: bytes) -> AsyncGenerator[LeaderResponse, None]:
    """Every announcement in election `name`: the current leader's, its later values,
    then the next leader's, and so on; ends (without error) if a read or watch fails.

    As etcd's Election.Observe, values a leader proclaimed and replaced between two
    reads may be skipped; the latest one is always sent. Close it (`aclose`, or
    `contextlib.aclosing`) when the caller goes away: it holds a watch on the hub.
    """
    prefix = name + b"/"
    while True:
        try:
            resp = await cc.read(svc, cc.first_created(prefix))
            if resp.kvs:
                current = LeaderResponse(resp.revision, resp.kvs[0])
            else:
                current = await _first_put(svc, prefix, resp.revision)
        except E.EtcdError:
            return
        yield current
        events = cc.watch_events(svc, current.kv.key, b"", current.revision + 1)
        try:
            async for batch in events:
                for ev in batch.events:
                    if ev.type == rq.EventType.DELETE:
                        break
                    yield LeaderResponse(batch.revision, ev.kv)
                else:
                    continue
                break  # the leader's key is gone: look for the next leader
        except E.EtcdError:
            return
        finally:
            await events.aclose()


async def _first_put(svc: KVService, prefix: bytes, revision: int) -> LeaderResponse:
    """The first key put under `prefix` from `revision` on: the first leader of an
    election that had none (its header revision is the put's)."""
    events = cc.watch_events(svc, prefix, cc.prefix_end(prefix), revision)
    try:
        async for batch in events:
            for ev in batch.events:
                if ev.type == rq.EventType.PUT:
                    return LeaderResponse(ev.kv.mod_revision, ev.kv)
    finally:
        await events.aclose()
    raise E.EtcdError(cc.LOST_WATCHER)  # watch_events raises first; kept for the type checker
