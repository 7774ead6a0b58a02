"""Transactions: compares, branch choice, pre-checks and execution (etcd 3.4 apply.go).

Order of a txn apply, as etcd does it:
1. `txn_path`: every compare - including those of nested txns in the chosen
   branches - is evaluated against the state *before* the txn runs.
2. `check_ops`: ranges at an explicit revision must not be future/compacted,
   puts must name an existing lease, ignore_value/ignore_lease need the key.
   Failing here rejects the whole txn before anything is written.
3. `execute`: operations run in order, later ones seeing earlier writes; all
   changes share one revision.

`validate_request` holds the checks etcd's gRPC layer makes before proposing
(empty key, too many operations, duplicate keys); the gateway or server calls it
so a bad request never reaches the Raft log.
"""

from __future__ import annotations

from typing import Any

from node.errors import (
    ErrCompacted,
    ErrDuplicateKey,
    ErrFutureRev,
    ErrInvalidSortOption,
    ErrKeyNotFound,
    ErrKeyNotProvided,
    ErrLeaseNotFound,
    ErrLeaseProvided,
    ErrTooManyOps,
    ErrValueProvided,
)
from node.mvcc import requests as rq
from node.mvcc.kv import Reader, WriteTxn, in_range

DEFAULT_MAX_TXN_OPS = 128  # etcd's --max-txn-ops


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def compare(reader: Reader, c: rq.Compare, cur: int) -> bool:
    """applyCompare: every key in the compare's range must satisfy it.

    No key: a VALUE compare fails (a missing value cannot equal anything);
    other targets compare the zero KeyValue (version 0, revisions 0, lease 0),
    which is how `version == 0` / `create_revision == 0` test for absence.
    Numbers outside the enums are etcd's compareKV too (measured on 3.4.23): an
    unknown target compares as equal, an unknown result holds.
    """
    target = c.target
    rows = reader.rows(c.key, c.range_end, cur, cur, with_value=target == rq.CompareTarget.VALUE)
    if not rows:
        if target == rq.CompareTarget.VALUE:
            return False
        rows = [(c.key, 0, 0, 0, 0, b"")]
    for row in rows:
        if target == rq.CompareTarget.VALUE:
            r = _cmp(bytes(row[5] or b""), c.value)
        elif target == rq.CompareTarget.VERSION:
            r = _cmp(row[3], c.version)
        elif target == rq.CompareTarget.CREATE:
            r = _cmp(row[1], c.create_revision)
        elif target == rq.CompareTarget.MOD:
            r = _cmp(row[2], c.mod_revision)
        elif target == rq.CompareTarget.LEASE:
            r = _cmp(row[4], c.lease)
        else:
            r = 0
        res = c.result
        if res == rq.CompareResult.EQUAL:
            ok = r == 0
        elif res == rq.CompareResult.NOT_EQUAL:
            ok = r != 0
        elif res == rq.CompareResult.GREATER:
            ok = r > 0
        elif res == rq.CompareResult.LESS:
            ok = r < 0
        else:
            ok = True
        if not ok:
            return False
    return True


def txn_path(reader: Reader, req: rq.TxnRequest, cur: int, path: dict[int, bool]) -> None:
    """compareToPath: decide this txn and the nested txns of its chosen branch."""
    ok = all(compare(reader, c, cur) for c in req.compare)
    path[id(req)] = ok
    for op in req.success if ok else req.failure:
        if isinstance(op, rq.TxnRequest):
            txn_path(reader, op, cur, path)


def check_ops(
    reader: Reader, req: rq.TxnRequest, path: dict[int, bool], cur: int, leases: dict[int, int]
) -> None:
    """checkRequests: reject the txn before any write if an op would fail."""
    for op in req.success if path[id(req)] else req.failure:
        if isinstance(op, rq.PutRequest):
            if op.ignore_value or op.ignore_lease:
                if not reader.rows(op.key, b"", cur, cur, with_value=False):
                    raise ErrKeyNotFound
            if op.lease and op.lease not in leases:
                raise ErrLeaseNotFound
        elif isinstance(op, rq.RangeRequest):
            if op.revision == 0:
                continue
            if op.revision > cur:
                raise ErrFutureRev
            if op.revision < reader.state.compact_rev:
                raise ErrCompacted
        elif isinstance(op, rq.TxnRequest):
            check_ops(reader, op, path, cur, leases)


def execute(wt: WriteTxn, req: rq.TxnRequest, path: dict[int, bool]) -> rq.TxnResponse:
    """Run the chosen branch; a nested txn's response keeps revision 0, as in etcd."""
    ok = path[id(req)]
    resp = rq.TxnResponse(succeeded=ok)
    out = resp.responses
    for op in req.success if ok else req.failure:
        if isinstance(op, rq.PutRequest):
            out.append(wt.put(op))
        elif isinstance(op, rq.RangeRequest):
            out.append(wt.range(op))
        elif isinstance(op, rq.DeleteRangeRequest):
            out.append(wt.delete_range(op))
        else:
            out.append(execute(wt, op, path))
    return resp


def has_put(req: rq.TxnRequest) -> bool:
    """etcd's txn quota cost > 0: a put directly in success or failure (not nested)."""
    return any(isinstance(op, rq.PutRequest) for op in (*req.success, *req.failure))


def is_read_only(req: rq.TxnRequest) -> bool:
    """No put or delete anywhere: etcd serves such a txn without going through Raft."""
    for op in (*req.success, *req.failure):
        if isinstance(op, (rq.PutRequest, rq.DeleteRangeRequest)):
            return False
        if isinstance(op, rq.TxnRequest) and not is_read_only(op):
            return False
    return True


# ---- checks before proposing (etcdserver/api/v3rpc/key.go) -----------------------------
_SORT_TARGETS = frozenset(int(t) for t in rq.SortTarget)


def validate_request(req: Any, max_txn_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """Raise the error etcd's gRPC layer answers for a malformed KV request."""
    if isinstance(req, rq.PutRequest):
        if not req.key:
            raise ErrKeyNotProvided
        if req.ignore_value and req.value:
            raise ErrValueProvided
        if req.ignore_lease and req.lease:
            raise ErrLeaseProvided
    elif isinstance(req, rq.RangeRequest):
        if not req.key:
            raise ErrKeyNotProvided
        if req.sort_target not in _SORT_TARGETS:
            raise ErrInvalidSortOption
    elif isinstance(req, rq.DeleteRangeRequest):
        if not req.key:
            raise ErrKeyNotProvided
    elif isinstance(req, rq.TxnRequest):
        _check_txn(req, max_txn_ops)
        _check_intervals(req.success)
        _check_intervals(req.failure)


def _check_txn(req: rq.TxnRequest, max_txn_ops: int) -> None:
    opc = max(len(req.compare), len(req.success), len(req.failure))
    if opc > max_txn_ops:
        raise ErrTooManyOps
    for c in req.compare:
        if not c.key:
            raise ErrKeyNotProvided
    for op in (*req.success, *req.failure):
        if isinstance(op, rq.TxnRequest):
            _check_txn(op, max_txn_ops - opc)
        else:
            validate_request(op, max_txn_ops)


_Interval = tuple[bytes, bytes]


def _hits(dels: list[_Interval], key: bytes) -> bool:
    return any(in_range(key, start, end) for start, end in dels)


def _check_intervals(ops: list[rq.RequestOp]) -> tuple[set[bytes], list[_Interval]]:
    """checkIntervals: no key may be put twice, or put and deleted, in one txn branch.

    Puts in the success and failure branches of one nested txn may repeat
    (only one branch runs). Overlapping deletes are allowed. NB: etcd builds a
    range_end of "\\0" into an empty interval here; we treat it as "every key
    >= key", which rejects a put+delete-all that etcd would let through.
    """
    dels: list[_Interval] = [
        (op.key, op.range_end) for op in ops if isinstance(op, rq.DeleteRangeRequest)
    ]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, rq.TxnRequest):
            continue
        puts_then, dels_then = _check_intervals(op.success)
        puts_else, dels_else = _check_intervals(op.failure)
        for k in puts_then:
            if k in puts or _hits(dels, k):
                raise ErrDuplicateKey
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or _hits(dels, k):
                raise ErrDuplicateKey
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if isinstance(op, rq.PutRequest):
            if op.key in puts or _hits(dels, op.key):
                raise ErrDuplicateKey
            puts.add(op.key)
    return puts, dels
