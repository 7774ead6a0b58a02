"""KV and Maintenance answers over gRPC equal to etcd's field by field.

Each scenario runs on raftmon1 and on etcd1 under the same key prefix; the answers
are compared whole, after `masked` drops the member's ids and makes revisions
relative to the revision before the scenario (the two stores have different pasts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.message import Message

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from tests.api.grpc.conftest import Etcd
from tests.api.grpc.wire import T, masked

pytestmark = [pytest.mark.tools]

C, R = pb.Compare, pb.RangeRequest
Scenario = Callable[[Etcd], list[Message]]


def _side_by_side(raftmon: Etcd, etcd: Etcd, scenario: Scenario) -> list[dict[str, Any]]:
    """The masked answers of `scenario`, asserted equal on both; etcd's are returned."""
    answers = []
    for server in (raftmon, etcd):
        base = server.kv.Range(pb.RangeRequest(key=b"/"), timeout=T).header.revision
        answers.append([masked(m, base) for m in scenario(server)])
    ours, theirs = answers
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"answer {i}: raftmon {a}\n != etcd {b}"
    return theirs


def _put(key: bytes, value: bytes = b"v", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **kw))


def _range(key: bytes, range_end: bytes = b"", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, range_end=range_end, **kw))


def _delete(key: bytes, range_end: bytes = b"", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(
        request_delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end, **kw)
    )


def _seed(server: Etcd, prefix: bytes, n: int) -> list[Message]:
    """n keys under `prefix`, values in reverse order, the middle one updated twice."""
    out: list[Message] = []
    for i in range(n):
        key = prefix + b"k%d" % i
        out.append(server.kv.Put(pb.PutRequest(key=key, value=b"v%d" % (n - i)), timeout=T))
    mid = prefix + b"k%d" % (n // 2)
    out += [
        server.kv.Put(pb.PutRequest(key=mid, value=value, prev_kv=True), timeout=T)
        for value in (b"again", b"z-last")
    ]
    return out


def test_range_options_answer_as_etcd(raftmon_grpc: Etcd, etcd_grpc: Etcd) -> None:
    p = b"/sbs-range/"

    def scenario(s: Etcd) -> list[Message]:
        out = _seed(s, p, 6)
        first = out[0].header.revision
        end = b"/sbs-range0"
        ranges = [
            pb.RangeRequest(key=p, range_end=end),
            pb.RangeRequest(key=p, range_end=end, limit=2),
            pb.RangeRequest(key=p, range_end=end, count_only=True),
            pb.RangeRequest(key=p, range_end=end, keys_only=True, limit=3),
            pb.RangeRequest(key=p, range_end=end, revision=first + 2),
            pb.RangeRequest(key=p, range_end=end, min_mod_revision=first + 3),
            pb.RangeRequest(key=p, range_end=end, max_mod_revision=first + 1),
            pb.RangeRequest(key=p, range_end=end, min_create_revision=first + 4),
            pb.RangeRequest(key=p, range_end=end, max_create_revision=first + 2, limit=1),
            pb.RangeRequest(key=p, range_end=b"\0"),  # from the prefix to the end
            pb.RangeRequest(key=p + b"k3"),
            pb.RangeRequest(key=p + b"nope"),
            pb.RangeRequest(key=p, range_end=end, serializable=True, limit=1),
        ]
        ranges += [
            pb.RangeRequest(key=p, range_end=end, sort_target=target, sort_order=order, limit=4)
            for target in (R.KEY, R.VERSION, R.CREATE, R.MOD, R.VALUE)
            for order in (R.NONE, R.ASCEND, R.DESCEND)
        ]
        return out + [s.kv.Range(r, timeout=T) for r in ranges]

    _side_by_side(raftmon_grpc, etcd_grpc, scenario)


def test_delete_range_with_prev_kv_answers_as_etcd(raftmon_grpc: Etcd, etcd_grpc: Etcd) -> None:
    p = b"/sbs-del/"

    def scenario(s: Etcd) -> list[Message]:
        out = _seed(s, p, 5)
        deletes = [
            pb.DeleteRangeRequest(key=p + b"k0", prev_kv=True),
            pb.DeleteRangeRequest(key=p + b"k0", prev_kv=True),  # nothing left: no revision
            pb.DeleteRangeRequest(key=p + b"k1", range_end=p + b"k3", prev_kv=True),
            pb.DeleteRangeRequest(key=p, range_end=b"/sbs-del0"),
        ]
        return out + [s.kv.DeleteRange(d, timeout=T) for d in deletes]

    _side_by_side(raftmon_grpc, etcd_grpc, scenario)


def test_txn_with_every_compare_target_and_nested_ops_answers_as_etcd(
    raftmon_grpc: Etcd, etcd_grpc: Etcd
) -> None:
    p = b"/sbs-txn/"

    def scenario(s: Etcd) -> list[Message]:
        out = _seed(s, p, 4)
        first = out[0].header.revision
        lease = s.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=300), timeout=T).ID
        out.append(s.kv.Put(pb.PutRequest(key=p + b"leased", value=b"l", lease=lease), timeout=T))
        k0, k2 = p + b"k0", p + b"k2"
        compares = [
            C(key=k0, target=C.VERSION, result=C.EQUAL, version=1),
            C(key=k0, target=C.CREATE, result=C.EQUAL, create_revision=first),
            C(key=k2, target=C.MOD, result=C.GREATER, mod_revision=first),
            C(key=k2, target=C.VALUE, result=C.EQUAL, value=b"z-last"),
            C(key=p + b"leased", target=C.LEASE, result=C.EQUAL, lease=lease),
            C(key=p, range_end=b"/sbs-txn0", target=C.VERSION, result=C.LESS, version=4),
            C(key=p + b"missing", target=C.VERSION, result=C.EQUAL, version=0),
            C(key=k0, target=C.VALUE, result=C.NOT_EQUAL, value=b"other"),
        ]
        nested = pb.TxnRequest(
            compare=[C(key=k0, target=C.VALUE, result=C.EQUAL, value=b"nope")],
            success=[_put(p + b"never")],
            failure=[
                _put(p + b"k1", b"from-nested", prev_kv=True),
                _range(p, b"/sbs-txn0", count_only=True),
            ],
        )
        txns = [
            pb.TxnRequest(
                compare=compares,
                success=[
                    _range(p, b"/sbs-txn0", limit=2, sort_order=R.DESCEND),
                    _put(p + b"new", prev_kv=True),
                    _delete(p + b"k3", prev_kv=True),
                    pb.RequestOp(request_txn=nested),
                ],
                failure=[_put(p + b"failed")],
            ),
            # each compare failing alone chooses the failure branch
            *(
                pb.TxnRequest(
                    compare=[*compares[:i], C(key=k0, target=C.VERSION, result=C.LESS)],
                    success=[_put(p + b"wrong")],
                    failure=[_range(k0), _delete(p + b"nothing")],
                )
                for i in range(0, len(compares), 3)
            ),
            pb.TxnRequest(),  # empty: succeeds, no responses
            pb.TxnRequest(success=[_range(p, b"/sbs-txn0", keys_only=True)]),  # read-only
        ]
        out += [s.kv.Txn(t, timeout=T) for t in txns]
        s.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), timeout=T)
        return out

    theirs = _side_by_side(raftmon_grpc, etcd_grpc, scenario)
    assert theirs[7]["succeeded"] is True  # the scenario exercises both branches
    assert theirs[8]["succeeded"] is False


def test_maintenance_answers_carry_etcds_headers(raftmon_grpc: Etcd, etcd_grpc: Etcd) -> None:
    """Alarm, Defragment and MoveLeader answer with no header in etcd 3.4."""

    def scenario(s: Etcd) -> list[Message]:
        me = s.maintenance.Status(pb.StatusRequest(), timeout=T).header.member_id
        return [
            s.maintenance.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET), timeout=T),
            s.maintenance.Defragment(pb.DefragmentRequest(), timeout=T),
            s.maintenance.MoveLeader(pb.MoveLeaderRequest(targetID=me), timeout=T),
        ]

    for answer in _side_by_side(raftmon_grpc, etcd_grpc, scenario):
        assert "header" not in answer
