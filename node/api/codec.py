"""etcd v3 gateway JSON <-> the state machine's request and response values.

Requests are read the way etcd 3.4's gateway reads them - grpc-gateway v1 with
golang/protobuf's jsonpb over Go's encoding/json - so every body gets etcd's answer:

- fields by proto name or lowerCamel JSON name (the camel one wins when both are
  sent); unknown fields ignored; `null` means "not set"; duplicate keys: the last wins;
- int64/uint64/int32 fields take JSON numbers or strings; a string's raw bytes between
  the quotes are read as a JSON number, so " 1" is 1 but "+1", "01", "1e3", an Arabic-Indic "1" and
  2**63 are refused with Go's message;
- enums take the exact name or an int32 number (out-of-enum numbers pass, etcd's server
  checks decide); bytes are Go's base64 (padding required, "\r\n" skipped, Go's error
  byte) or, as Go allows, an array of numbers 0..255;
- a oneof (RequestOp, Compare's target, WatchRequest) with two members set is refused:
  etcd keeps whichever one Go's map iteration visits last, a coin flip per request.

Every problem raises one of etcd's error values (`ErrInvalidRequest` unless etcd's
server check says otherwise) before anything is proposed; nothing else escapes `parse_body` or a
`*_request` function, whatever the bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, TypeVar

from node.api import gojson
from node.errors import ErrInvalidRequest, ErrKeyNotFound, ErrTooManyOps, EtcdError
from node.mvcc import requests as rq

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import DataclassInstance

M = TypeVar("M", bound="DataclassInstance")

# Txns nested deeper than this are refused while decoding: etcd's default --max-txn-ops
# (128) refuses them anyway (each level spends at least one op of the budget), and the
# bound keeps every recursive walk of a txn (decode, checks, apply) far from Python's
# recursion limit.
MAX_TXN_NESTING: Final = 128

INT64: Final = (-(1 << 63), (1 << 63) - 1)
UINT64: Final = (0, (1 << 64) - 1)
INT32: Final = (-(1 << 31), (1 << 31) - 1)

# Go type names etcd's messages use for each enum.
_ENUM_GO_TYPES: dict[type, str] = {
    rq.SortOrder: "etcdserverpb.RangeRequest_SortOrder",
    rq.SortTarget: "etcdserverpb.RangeRequest_SortTarget",
    rq.CompareResult: "etcdserverpb.Compare_CompareResult",
    rq.CompareTarget: "etcdserverpb.Compare_CompareTarget",
    rq.WatchFilter: "etcdserverpb.WatchCreateRequest_FilterType",
    rq.AlarmAction: "etcdserverpb.AlarmRequest_AlarmAction",
    rq.AlarmType: "etcdserverpb.AlarmType",
}


# ---- the body -------------------------------------------------------------------------
def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, read as grpc-gateway reads it.

    One JSON value is read with Go's decoder (bytes after it are ignored, syntax
    errors carry Go's wording); an empty body or `null` is the empty request.
    """
    try:
        body = gojson.decode(raw)
    except gojson.GoSyntaxError as err:
        raise ErrInvalidRequest(str(err)) from None
    if body is gojson.EMPTY or body is None:
        return {}
    return message(body)


def next_message(buf: bytes, start: int = 0) -> tuple[Any, int] | None:
    """The next JSON value of a streamed body (watch, keep-alive) and the byte after it.

    None while the bytes so far hold no complete value; a syntax error raises EtcdError
    with Go's words. Works on bytes, so a UTF-8 character split between two chunks is
    simply waited for.
    """
    try:
        return gojson.decode_prefix(buf, start)
    except gojson.GoSyntaxError as err:
        raise ErrInvalidRequest(str(err)) from None


def message(value: Any) -> dict[str, Any]:
    """A (nested) message: a JSON object, or null for "not set"."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _cannot(value, "map[string]json.RawMessage")
    return value


def _cannot(value: Any, go_type: str, with_text: bool = False) -> EtcdError:
    kind = gojson.go_type_name(value)
    if with_text:
        kind += " " + (value.text if isinstance(value, gojson.Number) else str(value))
    return ErrInvalidRequest(f"json: cannot unmarshal {kind} into Go value of type {go_type}")


_CAMEL_CACHE: dict[str, str] = {}


def _camel(name: str) -> str:
    """protoc's JSON name: "range_end" -> "rangeEnd" (jsonpb accepts both)."""
    camel = _CAMEL_CACHE.get(name)
    if camel is None:
        head, *rest = name.split("_")
        camel = _CAMEL_CACHE[name] = head + "".join(p[:1].upper() + p[1:] for p in rest)
    return camel


def field(body: dict[str, Any], name: str) -> Any:
    """jsonpb's consumeField: the camelCase spelling wins over the proto name."""
    camel = _camel(name)
    if camel != name and camel in body:
        return body[camel]
    return body.get(name)


def _oneof(body: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The one member of a oneof that is set (null counts as unset)."""
    found = [(n, v) for n in names if (v := field(body, n)) is not None]
    if len(found) > 1:
        listed = ", ".join(n for n, _ in found)
        raise ErrInvalidRequest(f"json: more than one field of a oneof is set: {listed}")
    return found[0] if found else None


# ---- scalars -----------------------------------------------------------------------------
_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_INT_BYTES = re.compile(rb"-?(?:0|[1-9][0-9]*)")


def _integer(value: Any, go_type: str, bounds: tuple[int, int], quoted_ok: bool = True) -> int:
    """An integer field as jsonpb + encoding/json read it (see the module docstring)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _cannot(value, go_type)
    if isinstance(value, int):
        if bounds[0] <= value <= bounds[1]:
            return value
        raise _cannot(value, go_type, with_text=True)
    if isinstance(value, gojson.Number):
        if _INT_TEXT.fullmatch(value.text):
            number = int(value.text)
            if bounds[0] <= number <= bounds[1] and not (value.text == "-0" and bounds[0] == 0):
                return number
        raise _cannot(value, go_type, with_text=True)
    if isinstance(value, str) and quoted_ok:
        # jsonpb drops the quotes and hands the raw bytes to json.Unmarshal.
        inner = gojson.raw_bytes(value)
        if _INT_BYTES.fullmatch(inner):
            literal: Any = gojson.Number("-0") if inner == b"-0" else int(inner)
            return _integer(literal, go_type, bounds, quoted_ok=False)
        try:
            parsed = gojson.unmarshal(inner)
        except gojson.GoSyntaxError as err:
            raise ErrInvalidRequest(str(err)) from None
        return _integer(parsed, go_type, bounds, quoted_ok=False)
    raise _cannot(value, go_type)


def to_int(value: Any, field_name: str = "") -> int:
    """An int64 field."""
    return _integer(value, "int64", INT64)


def to_uint(value: Any, field_name: str = "") -> int:
    """A uint64 field (member ids)."""
    return _integer(value, "uint64", UINT64)


def to_bool(value: Any, field_name: str = "") -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _cannot(value, "bool")


def to_enum(value: Any, enum_type: Any, field_name: str = "") -> int:
    """An enum field: its exact name in quotes, or any int32 number (etcd checks later)."""
    go_type = _ENUM_GO_TYPES.get(enum_type, field_name)
    if isinstance(value, str):
        raw = gojson.raw_bytes(value)  # jsonpb looks the raw bytes up, unescaped
        member = enum_type.__members__.get(raw.decode("utf-8", "replace"))
        if member is None or not raw.isascii():
            raise ErrInvalidRequest(f"unknown value {gojson.go_quote(raw)} for enum {go_type}")
        return int(member)
    return _integer(value, go_type, INT32, quoted_ok=False)


def to_enums(value: Any, enum_type: Any, field_name: str = "") -> list[int]:
    """A repeated enum (watch filters)."""
    go_type = _ENUM_GO_TYPES.get(enum_type, field_name)
    if value is None:
        return []
    if isinstance(value, str):  # jsonpb tries the name before noticing the slice
        to_enum(value, enum_type, field_name)
        raise ErrInvalidRequest(f'invalid target "slice" for enum {go_type}')
    return [to_enum(v, enum_type, field_name) for v in to_list(value)]


def to_list(value: Any) -> list[Any]:
    """A repeated message or enum: a JSON array, or null for none."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _cannot(value, "[]json.RawMessage")
    return value


# ---- bytes: Go's encoding/base64 StdEncoding, as encoding/json decodes []byte -----------------
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
# Whole 4-character quanta, each character possibly preceded by line breaks Go skips.
_B64_QUANTA = re.compile(rb"(?:(?:[\r\n]*[A-Za-z0-9+/]){4})*")


def _b64_corrupt(pos: int) -> EtcdError:
    return ErrInvalidRequest(f"illegal base64 data at input byte {pos}")


def _b64_check_tail(src: bytes, si: int) -> None:
    """Go's decodeQuantum from `si` to the end: raise at the byte Go names, if any."""
    n = len(src)
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return
                raise _b64_corrupt(si - j)
            c = src[si]
            si += 1
            if c in _B64_ALPHABET:
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != 0x3D or j < 2:  # not padding, or padding too early
                raise _b64_corrupt(si - 1)
            if j == 2:  # "==" expected; line breaks may sit between the two
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    raise _b64_corrupt(n)
                if src[si] != 0x3D:
                    raise _b64_corrupt(si - 1)
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                raise _b64_corrupt(si)  # bytes after the padding
            return


_B64_RUN = re.compile(rb"[A-Za-z0-9+/]*")


def go_b64decode(src: bytes) -> bytes:
    """base64.StdEncoding.Decode: strict alphabet and padding, line breaks skipped."""
    if b"\n" in src or b"\r" in src:
        # Go skips line breaks anywhere, so the text is valid iff it is valid without them;
        # only an invalid one needs the slow walk that names Go's byte.
        try:
            return go_b64decode(src.replace(b"\r", b"").replace(b"\n", b""))
        except EtcdError:
            m = _B64_QUANTA.match(src)
            _b64_check_tail(src, m.end() if m else 0)
            raise
    m = _B64_RUN.match(src)  # one character class: sre's fast loop
    run = m.end() if m else 0
    _b64_check_tail(src, run - run % 4)
    # Checked above, so the lenient decoder yields exactly Go's bytes (it skips \r\n too).
    return binascii.a2b_base64(src) if src else b""


def b64decode(value: Any, field_name: str = "") -> bytes:
    """A bytes field: base64 text, or (as Go allows) an array of numbers 0..255."""
    if value is None:
        return b""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return go_b64decode(data) if data else b""
    if isinstance(value, list):
        return bytes(_integer(v, "uint8", (0, 255), quoted_ok=False) for v in value)
    raise _cannot(value, "[]uint8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---- requests -----------------------------------------------------------------------------
# Scalar fields by the value type of the dataclass field; enums are named per field.
_SCALARS: dict[str, Callable[[Any], Any]] = {"bytes": b64decode, "int": to_int, "bool": to_bool}


def _enum(enum_type: type) -> Callable[[Any], int]:
    return lambda value: to_enum(value, enum_type)


def _decoder(cls: type[M], **readers: Callable[[Any], Any]) -> Callable[[Any], M]:
    """A message's decoder: every field of the dataclass `cls`, read by `readers` or its type.

    Fields are read in the dataclass's order, which is the proto's, so the first bad
    field is the one etcd names.
    """
    plan = [(f.name, readers.get(f.name) or _SCALARS[str(f.type)]) for f in fields(cls)]

    def decode(body: Any) -> M:
        body = message(body)
        return cls(**{name: read(field(body, name)) for name, read in plan})

    return decode


put_request = _decoder(rq.PutRequest)
range_request = _decoder(
    rq.RangeRequest, sort_order=_enum(rq.SortOrder), sort_target=_enum(rq.SortTarget)
)
delete_range_request = _decoder(rq.DeleteRangeRequest)
compaction_request = _decoder(rq.CompactionRequest)


_COMPARE_UNION = ("version", "create_revision", "mod_revision", "value", "lease")


def compare(body: Any) -> rq.Compare:
    """A Compare; null stands for an empty one (etcd 3.4 crashes on it, see the fuzz notes)."""
    body = message(body)
    out = rq.Compare(
        result=to_enum(field(body, "result"), rq.CompareResult),
        target=to_enum(field(body, "target"), rq.CompareTarget),
        key=b64decode(field(body, "key")),
        range_end=b64decode(field(body, "range_end")),
    )
    member = _oneof(body, _COMPARE_UNION)
    if member is not None:
        name, value = member
        if name == "value":
            out.value = b64decode(value)
        else:
            setattr(out, name, to_int(value))
    return out


_OP_NAMES = ("request_range", "request_put", "request_delete_range", "request_txn")


class _Decoding:
    """State of one txn decode: its depth, and whether an empty RequestOp was seen."""

    __slots__ = ("depth", "empty_op")

    def __init__(self) -> None:
        self.depth = 0
        self.empty_op = False


def request_op(body: Any, state: _Decoding | None = None) -> rq.RequestOp:
    state = state or _Decoding()
    member = _oneof(message(body), _OP_NAMES)
    if member is None:
        # etcd's checkRequestOp answers an empty op (or a null one) with ErrGRPCKeyNotFound,
        # after the whole body is decoded; a placeholder keeps the decode going.
        state.empty_op = True
        return rq.RangeRequest(key=b"")
    name, value = member
    if name == "request_txn":
        return _txn(value, state)
    return _OPS[name](value)


_OPS: dict[str, Callable[[Any], rq.RequestOp]] = {
    "request_range": range_request,
    "request_put": put_request,
    "request_delete_range": delete_range_request,
}


def _txn(body: Any, state: _Decoding) -> rq.TxnRequest:
    state.depth += 1
    if state.depth > MAX_TXN_NESTING:
        raise ErrTooManyOps
    body = message(body)
    req = rq.TxnRequest(
        compare=[compare(c) for c in to_list(field(body, "compare"))],
        success=[request_op(op, state) for op in to_list(field(body, "success"))],
        failure=[request_op(op, state) for op in to_list(field(body, "failure"))],
    )
    state.depth -= 1
    return req


def txn_request(body: Any) -> rq.TxnRequest:
    state = _Decoding()
    req = _txn(body, state)
    if state.empty_op:
        raise ErrKeyNotFound
    return req


def lease_id(body: Any) -> int:
    """The ID of a LeaseRevoke/LeaseKeepAlive/LeaseTimeToLive request."""
    return to_int(field(message(body), "ID"))


def lease_grant_request(body: Any) -> rq.LeaseGrantRequest:
    body = message(body)
    return rq.LeaseGrantRequest(ttl=to_int(field(body, "TTL")), id=to_int(field(body, "ID")))


def lease_time_to_live_request(body: Any) -> rq.LeaseTimeToLiveRequest:
    body = message(body)
    return rq.LeaseTimeToLiveRequest(
        id=to_int(field(body, "ID")), keys=to_bool(field(body, "keys"))
    )


def alarm_request(body: Any) -> rq.AlarmRequest:
    body = message(body)
    return rq.AlarmRequest(
        action=to_enum(field(body, "action"), rq.AlarmAction),
        member_id=to_uint(field(body, "memberID")),
        alarm=to_enum(field(body, "alarm"), rq.AlarmType),
    )


def hash_kv_revision(body: Any) -> int:
    return to_int(field(message(body), "revision"))


def member_id(body: Any) -> int:
    """MemberRemove / MemberPromote: {"ID": "<uint64>"}."""
    return to_uint(field(message(body), "ID"))


def peer_urls(body: Any) -> list[str]:
    """MemberAdd / MemberUpdate's peerURLs: a list of strings."""
    urls = to_list(field(message(body), "peerURLs"))
    for url in urls:
        if not isinstance(url, str):
            raise _cannot(url, "string")
    return [str(u) for u in urls]


def member_add_learner(body: Any) -> bool:
    return to_bool(field(message(body), "isLearner"))


def move_leader_target(body: Any) -> int:
    return to_uint(field(message(body), "targetID"))


_watch_create = _decoder(
    rq.WatchCreateRequest, filters=lambda value: to_enums(value, rq.WatchFilter)
)


def watch_create_request(body: Any) -> rq.WatchCreateRequest:
    req = _watch_create(body)
    to_bool(field(message(body), "fragment"))  # etcd 3.4 reads it (and we never fragment)
    return req


@dataclass(frozen=True, slots=True)
class WatchCancel:
    watch_id: int


@dataclass(frozen=True, slots=True)
class WatchProgress:
    pass


WatchRequest = rq.WatchCreateRequest | WatchCancel | WatchProgress


def watch_request(body: Any) -> WatchRequest | None:
    """One message of a watch stream; None when it sets nothing (etcd ignores it)."""
    member = _oneof(message(body), ("create_request", "cancel_request", "progress_request"))
    if member is None:
        return None
    name, value = member
    if name == "create_request":
        return watch_create_request(value)
    if name == "cancel_request":
        return WatchCancel(to_int(field(message(value), "watch_id")))
    message(value)
    return WatchProgress()


# ---- responses --------------------------------------------------------------------
def _nonzero(out: dict[str, Any], obj: object, **encoders: Callable[[Any], Any]) -> dict[str, Any]:
    """Add obj's fields in the order given, each through its encoder.

    proto3 JSON (grpc-gateway's marshaler) leaves out every field at its zero value, so a
    message's encoder is only its field list: int64 as a decimal string, bytes as base64,
    a bool present only when true, a nested message or list through its own encoder.
    """
    for name, encode in encoders.items():
        value = getattr(obj, name)
        if value:
            out[name] = encode(value)
    return out


def _int64(value: int) -> str:
    return str(value)


def _true(value: bool) -> bool:
    return value


def _each(encode: Callable[[Any], Any]) -> Callable[[list[Any]], list[Any]]:
    return lambda values: [encode(v) for v in values]


def _event_type(value: int) -> str:
    return rq.EventType(value).name  # PUT is 0, left out


def kv_json(kv: rq.KeyValue) -> dict[str, Any]:
    return _nonzero(
        {"key": b64(kv.key)},
        kv,
        create_revision=_int64,
        mod_revision=_int64,
        version=_int64,
        value=b64,
        lease=_int64,
    )


def put_json(resp: rq.PutResponse, header: dict[str, str]) -> dict[str, Any]:
    return _nonzero({"header": header}, resp, prev_kv=kv_json)


def range_json(resp: rq.RangeResponse, header: dict[str, str]) -> dict[str, Any]:
    return _nonzero({"header": header}, resp, kvs=_each(kv_json), more=_true, count=_int64)


def delete_range_json(resp: rq.DeleteRangeResponse, header: dict[str, str]) -> dict[str, Any]:
    return _nonzero({"header": header}, resp, deleted=_int64, prev_kvs=_each(kv_json))


def _inner_header(revision: int) -> dict[str, str]:
    return {"revision": str(revision)} if revision else {}


def response_op(resp: rq.ResponseOp) -> dict[str, Any]:
    if isinstance(resp, rq.PutResponse):
        return {"response_put": put_json(resp, _inner_header(resp.revision))}
    if isinstance(resp, rq.RangeResponse):
        return {"response_range": range_json(resp, _inner_header(resp.revision))}
    if isinstance(resp, rq.DeleteRangeResponse):
        return {"response_delete_range": delete_range_json(resp, _inner_header(resp.revision))}
    return {"response_txn": txn_json(resp, _inner_header(resp.revision))}


def txn_json(resp: rq.TxnResponse, header: dict[str, str]) -> dict[str, Any]:
    return _nonzero({"header": header}, resp, succeeded=_true, responses=_each(response_op))


def event_json(event: rq.Event) -> dict[str, Any]:
    return _nonzero({}, event, type=_event_type, kv=kv_json, prev_kv=kv_json)


def watch_json(resp: rq.WatchResponse, header: dict[str, str]) -> dict[str, Any]:
    out = _nonzero(
        {"header": header},
        resp,
        watch_id=_int64,
        created=_true,
        canceled=_true,
        compact_revision=_int64,
        cancel_reason=str,
        events=_each(event_json),
    )
    return {"result": out}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
