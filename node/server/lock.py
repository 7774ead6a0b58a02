"""etcd's v3lock service (Lock, Unlock): clientv3's Mutex, run by the member for its clients.

Lock blocks until the caller owns `name`: its key `<name>/<lease hex>` is the oldest
under `<name>/` (node/server/concurrency.py has the recipe). The ownership lasts as
long as the key: Unlock deletes it, and so does the lease's expiry or revocation, so
a crashed owner cannot hold a lock past its lease. A Lock whose caller goes away while
waiting deletes its key, as etcd's Mutex does, so it cannot be granted to nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.mvcc import requests as rq
from node.server import concurrency as cc

if TYPE_CHECKING:
    from node.server.kv_service import KVService


@dataclass(slots=True)
class LockResponse:
    """v3lockpb.LockResponse: the header's revision and the ownership key for Unlock."""

    revision: int
    key: bytes


@dataclass(slots=True)
class UnlockResponse:
    revision: int


async def lock(svc: KVService, name: bytes, lease: int) -> LockResponse:
    """Own `name` under `lease` (0: a new 60 s lease); blocks while older keys exist.

    The header is the claim's txn when the lock was free, else the read that saw the
    last older key gone (etcd's Mutex.Header()). An error while waiting, cancellation
    included, deletes the key before it propagates.
    """
    with cc.as_client():
        lease = await cc.session_lease(svc, lease)
        prefix = name + b"/"
        key = cc.waiter_key(prefix, lease)
        # Claim the key unless this lease already has it (a retried Lock keeps its
        # place); read the owner in the same txn, so a free lock costs one proposal.
        resp = await svc.txn(
            rq.TxnRequest(
                compare=[rq.Compare(key=key, target=rq.CompareTarget.CREATE, create_revision=0)],
                success=[rq.PutRequest(key=key, lease=lease), cc.first_created(prefix)],
                failure=[rq.RangeRequest(key=key), cc.first_created(prefix)],
            )
        )
    my_rev = resp.revision
    if not resp.succeeded:
        mine = resp.responses[0]
        assert isinstance(mine, rq.RangeResponse)
        my_rev = mine.kvs[0].create_revision
    owner = resp.responses[1]
    assert isinstance(owner, rq.RangeResponse)
    if not owner.kvs or owner.kvs[0].create_revision == my_rev:
        return LockResponse(resp.revision, key)
    try:
        revision = await cc.wait_deletes(svc, prefix, my_rev - 1)
    except BaseException:  # cancellation included: the caller is gone
        await cc.cleanup_on_cancel(lambda: svc.delete_range(rq.DeleteRangeRequest(key=key)))
        raise
    return LockResponse(revision, key)


async def unlock(svc: KVService, key: bytes) -> UnlockResponse:
    """Delete the ownership key (whoever holds it: etcd checks nothing more)."""
    with cc.as_client():
        resp = await svc.delete_range(rq.DeleteRangeRequest(key=key))
    return UnlockResponse(resp.revision)
