"""Every bad request over gRPC gets etcd's status code AND message, on raftmon1 and etcd1.

The texts are etcd 3.4's rpctypes (and grpc-go's for its own limits); each case runs on
etcd itself too, so a row here can only say what etcd says. Two requests crash etcd
3.4.23 (a nil sorter for sort_target 99, an unknown Alarm action): those run on raftmon
alone, which refuses them instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from tests.api.grpc.conftest import Etcd
from tests.api.grpc.wire import T, refusal

pytestmark = [pytest.mark.tools]

Code: TypeAlias = grpc.StatusCode
UNKNOWN_LEASE = 0x7A7A7B  # no test grants it
MAX_REQUEST_BYTES = int(1.5 * 1024 * 1024)  # both fixtures run with etcd's default
GRPC_LIMIT = MAX_REQUEST_BYTES + 512 * 1024  # grpc-go's receive limit in etcd
OVER_GRPC_LIMIT = pb.PutRequest(key=b"/r/big", value=b"x" * GRPC_LIMIT)


def _put_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"v"))


Case = Callable[[Etcd], object]
CASES: dict[str, tuple[Case, Code, str]] = {
    "put without key": (
        lambda s: s.kv.Put(pb.PutRequest(value=b"v"), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
    ),
    "range without key": (
        lambda s: s.kv.Range(pb.RangeRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
    ),
    "delete without key": (
        lambda s: s.kv.DeleteRange(pb.DeleteRangeRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
    ),
    "compare without key": (
        lambda s: s.kv.Txn(pb.TxnRequest(compare=[pb.Compare(range_end=b"\0")]), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
    ),
    "range at a future revision": (
        lambda s: s.kv.Range(pb.RangeRequest(key=b"/r/k", revision=1 << 40), timeout=T),
        Code.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    "compact a future revision": (
        lambda s: s.kv.Compact(pb.CompactionRequest(revision=1 << 40), timeout=T),
        Code.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    "txn of 129 ops": (
        lambda s: s.kv.Txn(
            pb.TxnRequest(success=[_put_op(b"/r/%d" % i) for i in range(129)]), timeout=T
        ),
        Code.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    ),
    "nested txn of 129 ops": (
        lambda s: s.kv.Txn(
            pb.TxnRequest(
                failure=[
                    pb.RequestOp(
                        request_txn=pb.TxnRequest(
                            success=[_put_op(b"/r/%d" % i) for i in range(129)]
                        )
                    )
                ]
            ),
            timeout=T,
        ),
        Code.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    ),
    "txn putting one key twice": (
        lambda s: s.kv.Txn(pb.TxnRequest(success=[_put_op(b"/r/d")] * 2), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    ),
    "txn deleting a range it puts into": (
        lambda s: s.kv.Txn(
            pb.TxnRequest(
                success=[
                    _put_op(b"/r/dm"),
                    pb.RequestOp(
                        request_txn=pb.TxnRequest(
                            success=[
                                pb.RequestOp(
                                    request_delete_range=pb.DeleteRangeRequest(
                                        key=b"/r/", range_end=b"/r0"
                                    )
                                )
                            ]
                        )
                    ),
                ]
            ),
            timeout=T,
        ),
        Code.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    ),
    "txn op that sets nothing": (
        lambda s: s.kv.Txn(pb.TxnRequest(success=[pb.RequestOp()]), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: key not found",
    ),
    "ignore_value on a missing key": (
        lambda s: s.kv.Put(pb.PutRequest(key=b"/r/missing", ignore_value=True), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: key not found",
    ),
    "ignore_value with a value": (
        lambda s: s.kv.Put(pb.PutRequest(key=b"/r/k", value=b"v", ignore_value=True), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: value is provided",
    ),
    "ignore_lease with a lease": (
        lambda s: s.kv.Put(pb.PutRequest(key=b"/r/k", lease=5, ignore_lease=True), timeout=T),
        Code.INVALID_ARGUMENT,
        "etcdserver: lease is provided",
    ),
    "put with an unknown lease": (
        lambda s: s.kv.Put(pb.PutRequest(key=b"/r/k", value=b"v", lease=UNKNOWN_LEASE), timeout=T),
        Code.NOT_FOUND,
        "etcdserver: requested lease not found",
    ),
    "revoke an unknown lease": (
        lambda s: s.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=UNKNOWN_LEASE), timeout=T),
        Code.NOT_FOUND,
        "etcdserver: requested lease not found",
    ),
    "grant a TTL above the maximum": (
        lambda s: s.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=9_000_000_001), timeout=T),
        Code.OUT_OF_RANGE,
        "etcdserver: too large lease TTL",
    ),
    "put above --max-request-bytes": (
        lambda s: s.kv.Put(
            pb.PutRequest(key=b"/r/big", value=b"x" * (MAX_REQUEST_BYTES + 1024)), timeout=T
        ),
        Code.INVALID_ARGUMENT,
        "etcdserver: request is too large",
    ),
    "put above gRPC's limit": (
        lambda s: s.kv.Put(OVER_GRPC_LIMIT, timeout=T),
        Code.RESOURCE_EXHAUSTED,
        f"grpc: received message larger than max ({OVER_GRPC_LIMIT.ByteSize()} vs. {GRPC_LIMIT})",
    ),
    "move leadership to an unknown member": (
        lambda s: s.maintenance.MoveLeader(pb.MoveLeaderRequest(targetID=0xBAD), timeout=T),
        Code.FAILED_PRECONDITION,
        "etcdserver: bad leader transferee",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_request_gets_etcds_code_and_message(server: Etcd, case: str) -> None:
    call, code, message = CASES[case]
    assert refusal(lambda: call(server)) == (code, message)


def test_range_at_a_compacted_revision_is_out_of_range(server: Etcd) -> None:
    old = server.kv.Put(pb.PutRequest(key=b"/rc/k", value=b"1"), timeout=T).header.revision
    new = server.kv.Put(pb.PutRequest(key=b"/rc/k", value=b"2"), timeout=T).header.revision
    server.kv.Compact(pb.CompactionRequest(revision=new), timeout=T)
    compacted = (Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
    assert refusal(lambda: server.kv.Range(pb.RangeRequest(key=b"/rc/k", revision=old))) == (
        compacted
    )
    assert refusal(lambda: server.kv.Compact(pb.CompactionRequest(revision=old))) == compacted


def test_granting_a_lease_id_in_use_is_a_failed_precondition(server: Etcd) -> None:
    server.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30, ID=0x5EED0002), timeout=T)
    again = refusal(
        lambda: server.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30, ID=0x5EED0002), timeout=T)
    )
    assert again == (Code.FAILED_PRECONDITION, "etcdserver: lease already exists")
    server.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=0x5EED0002), timeout=T)


def test_a_message_over_grpcs_limit_ends_a_watch_stream_with_resource_exhausted(
    server: Etcd,
) -> None:
    huge = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"k" * GRPC_LIMIT))
    stream = server.watch.Watch(iter([huge]), timeout=T)
    code, message = refusal(lambda: list(stream))
    assert code == Code.RESOURCE_EXHAUSTED
    assert message.startswith("grpc: received message larger than max (")
    assert message.endswith(f" vs. {GRPC_LIMIT})")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etcdserverpb.KV/Nope", "unknown method Nope for service etcdserverpb.KV"),
        ("/nosuch.Service/Call", "unknown service nosuch.Service"),
    ],
)
def test_an_unknown_method_is_unimplemented_in_grpc_gos_words(
    server: Etcd, path: str, message: str
) -> None:
    assert server.channel is not None
    call = server.channel.unary_unary(path)
    assert refusal(lambda: call(b"", timeout=T)) == (Code.UNIMPLEMENTED, message)


# ---- what crashes etcd 3.4.23 is refused by raftmon --------------------------------------


def test_an_unknown_sort_target_is_refused_as_an_invalid_sort_option(raftmon_grpc: Etcd) -> None:
    """etcd 3.4.23 dereferences a nil sorter and exits; raftmon gives etcd's sort error."""
    bad = pb.RangeRequest(key=b"/r/k", sort_target=99)  # type: ignore[arg-type]
    assert refusal(lambda: raftmon_grpc.kv.Range(bad, timeout=T)) == (
        Code.INVALID_ARGUMENT,
        "etcdserver: invalid sort option",
    )


def test_an_unknown_sort_order_is_read_as_etcd_reads_it(server: Etcd) -> None:
    """etcd 3.4 does not check sort_order: an unknown one answers like any range."""
    got = server.kv.Range(pb.RangeRequest(key=b"/r/none", sort_order=99), timeout=T)  # type: ignore[arg-type]
    assert (got.count, list(got.kvs)) == (0, [])
