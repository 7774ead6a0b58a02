"""etcd's protobuf messages to the server's request types, and its answers back.

The KV service speaks the dataclasses of `node.mvcc.requests`, as the JSON gateway's
codec decodes them; this module is the gRPC front end's codec. protobuf has already
checked every field's type on the wire, so the work here is renaming (`ID` -> `id`)
and the oneofs (RequestOp, Compare's target_union, WatchRequest) etcd declares.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.mvccpb import kv_pb2
from node.errors import ErrKeyNotFound
from node.mvcc import requests as rq

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

M = TypeVar("M")

# ---- requests --------------------------------------------------------------------------


def _same_fields(cls: type[M]) -> Callable[[Any], M]:
    """A converter to `cls` from the etcd message whose fields have `cls`'s names.

    The request dataclasses name their fields as etcd's .proto does, so the conversion
    is the field list, read once.
    """
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def convert(m: Any) -> M:
        return cls(**{name: getattr(m, name) for name in names})

    return convert


put_request: Callable[[pb.PutRequest], rq.PutRequest] = _same_fields(rq.PutRequest)
range_request: Callable[[pb.RangeRequest], rq.RangeRequest] = _same_fields(rq.RangeRequest)


def delete_range_request(m: pb.DeleteRangeRequest) -> rq.DeleteRangeRequest:
    return rq.DeleteRangeRequest(key=m.key, range_end=m.range_end, prev_kv=m.prev_kv)


def compare(m: pb.Compare) -> rq.Compare:
    out = rq.Compare(key=m.key, target=m.target, result=m.result, range_end=m.range_end)
    member = m.WhichOneof("target_union")
    if member is not None:
        setattr(out, member, getattr(m, member))
    return out


def _request_op(m: pb.RequestOp, empty: list[bool]) -> rq.RequestOp:
    member = m.WhichOneof("request")
    if member == "request_put":
        return put_request(m.request_put)
    if member == "request_range":
        return range_request(m.request_range)
    if member == "request_delete_range":
        return delete_range_request(m.request_delete_range)
    if member == "request_txn":
        return _txn(m.request_txn, empty)
    # etcd's checkRequestOp: an op that sets nothing is ErrGRPCKeyNotFound, once the
    # whole request is read (a placeholder keeps the conversion going).
    empty.append(True)
    return rq.RangeRequest(key=b"")


def _txn(m: pb.TxnRequest, empty: list[bool]) -> rq.TxnRequest:
    return rq.TxnRequest(
        compare=[compare(c) for c in m.compare],
        success=[_request_op(op, empty) for op in m.success],
        failure=[_request_op(op, empty) for op in m.failure],
    )


def txn_request(m: pb.TxnRequest) -> rq.TxnRequest:
    empty: list[bool] = []
    req = _txn(m, empty)
    if empty:
        raise ErrKeyNotFound
    return req


def compaction_request(m: pb.CompactionRequest) -> rq.CompactionRequest:
    return rq.CompactionRequest(revision=m.revision, physical=m.physical)


_watch_create = _same_fields(rq.WatchCreateRequest)


def watch_create_request(m: pb.WatchCreateRequest) -> rq.WatchCreateRequest:
    req = _watch_create(m)
    req.filters = list(req.filters)  # a plain list, not protobuf's repeated container
    return req


# ---- answers ---------------------------------------------------------------------------


def key_value(kv: rq.KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def key_values(kvs: Iterable[rq.KeyValue]) -> list[kv_pb2.KeyValue]:
    return [key_value(kv) for kv in kvs]


def put_response(resp: rq.PutResponse, header: pb.ResponseHeader) -> pb.PutResponse:
    out = pb.PutResponse(header=header)
    if resp.prev_kv is not None:
        out.prev_kv.CopyFrom(key_value(resp.prev_kv))
    return out


def range_response(resp: rq.RangeResponse, header: pb.ResponseHeader) -> pb.RangeResponse:
    return pb.RangeResponse(
        header=header, kvs=key_values(resp.kvs), more=resp.more, count=resp.count
    )


def delete_range_response(
    resp: rq.DeleteRangeResponse, header: pb.ResponseHeader
) -> pb.DeleteRangeResponse:
    return pb.DeleteRangeResponse(
        header=header, deleted=resp.deleted, prev_kvs=key_values(resp.prev_kvs)
    )


def _inner_header(revision: int) -> pb.ResponseHeader:
    """A nested response's header: its revision only, as etcd fills it."""
    return pb.ResponseHeader(revision=revision)


def response_op(resp: rq.ResponseOp) -> pb.ResponseOp:
    header = _inner_header(resp.revision)
    if isinstance(resp, rq.PutResponse):
        return pb.ResponseOp(response_put=put_response(resp, header))
    if isinstance(resp, rq.RangeResponse):
        return pb.ResponseOp(response_range=range_response(resp, header))
    if isinstance(resp, rq.DeleteRangeResponse):
        return pb.ResponseOp(response_delete_range=delete_range_response(resp, header))
    return pb.ResponseOp(response_txn=txn_response(resp, header))


def txn_response(resp: rq.TxnResponse, header: pb.ResponseHeader) -> pb.TxnResponse:
    return pb.TxnResponse(
        header=header,
        succeeded=resp.succeeded,
        responses=[response_op(r) for r in resp.responses],
    )


def event(ev: rq.Event) -> kv_pb2.Event:
    out = kv_pb2.Event(type=ev.type, kv=key_value(ev.kv))  # type: ignore[arg-type]
    if ev.prev_kv is not None:
        out.prev_kv.CopyFrom(key_value(ev.prev_kv))
    return out


def watch_response(resp: rq.WatchResponse, header: pb.ResponseHeader) -> pb.WatchResponse:
    return pb.WatchResponse(
        header=header,
        watch_id=resp.watch_id,
        created=resp.created,
        canceled=resp.canceled,
        compact_revision=resp.compact_revision,
        cancel_reason=resp.cancel_reason,
        events=[event(ev) for ev in resp.events],
    )
