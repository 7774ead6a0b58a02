"""Backend quota: etcd's cost estimate of a request (etcdserver/quota.go).

The server asks `KVStore.check_quota(req)` before proposing a put, txn or
lease grant: it passes when `db total size + cost < quota`. When it fails, the
server answers ErrNoSpace and proposes AlarmRequest(ACTIVATE, NOSPACE) for
itself; once that alarm is applied every member rejects puts, txns with puts
and lease grants until an operator frees space (compact + defragment) and
disarms the alarm. Only direct puts of a txn count, as in etcd.
"""

from __future__ import annotations

from typing import Any

from node.mvcc import requests as rq

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024  # etcd's default --quota-backend-bytes
KV_OVERHEAD = 256  # etcd: estimated metadata cost of storing one key
LEASE_OVERHEAD = 64  # etcd: estimated cost of storing one lease


def cost(req: Any) -> int:
    """Bytes a request is expected to add (0 for requests the quota does not gate)."""
    if isinstance(req, rq.PutRequest):
        return KV_OVERHEAD + len(req.key) + len(req.value)
    if isinstance(req, rq.TxnRequest):
        success = sum(cost(op) for op in req.success if isinstance(op, rq.PutRequest))
        failure = sum(cost(op) for op in req.failure if isinstance(op, rq.PutRequest))
        return max(success, failure)
    if isinstance(req, rq.LeaseGrantRequest):
        return LEASE_OVERHEAD
    return 0


def gated(req: Any) -> bool:
    """Requests etcd's quota servers check (put, txn, lease grant)."""
    return isinstance(req, (rq.PutRequest, rq.TxnRequest, rq.LeaseGrantRequest))
