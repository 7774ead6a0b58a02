"""Raft entry data <-> request: a small, explicit binary codec.

Every replicated request becomes one entry's data:

    u8 format (=1) | u64 request_id | u8 tag | body

A proposal its proposer sent again after a leader change (a "retry", see
node/mvcc/dedup.py) wraps the first copy's data unchanged:

    u8 format (=2) | u64 since | first copy's data

The body is the request's fields in the order of `_SCHEMAS` below: bytes as
u32 length + raw bytes, ints as little-endian i64 (u64 for member ids), bools
as one byte, optional values as a presence byte, lists as u32 count + items,
and a txn's operations as tag + body. The schema is written out, not derived
from type hints, because it is a persistent format: entries outlive processes
in the WAL, so a field is only ever appended at the end of a schema together
with a format bump.

Why not JSON or pickle: JSON cannot carry bytes without base64 and is 5-10x
slower; pickle and marshal are not stable, safe formats for data read back
from disk or received from peers. A put of 256 bytes encodes and decodes in a
few microseconds (see tests/mvcc/test_codec_bench.py), far above the 20k/s the
driver needs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from node.errors import ErrUndecodable
from node.mvcc import requests as rq

FORMAT = 1
RETRY_FORMAT = 2

_HEADER = struct.Struct("<BQB")
_RETRY_HEADER = struct.Struct("<BQ")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_BOOL = struct.Struct("<?")

_Encoder = Callable[[Any, list[bytes]], None]
_Decoder = Callable[[bytes, int], tuple[Any, int]]

# tag -> class; tags are part of the persistent format: never renumber.
_TAGS: dict[int, type] = {
    1: rq.PutRequest,
    2: rq.RangeRequest,
    3: rq.DeleteRangeRequest,
    4: rq.TxnRequest,
    5: rq.CompactionRequest,
    6: rq.LeaseGrantRequest,
    7: rq.LeaseRevokeRequest,
    8: rq.AlarmRequest,
    9: rq.LeaseKeepAliveRequest,
    10: rq.LeaseTimeToLiveRequest,
    11: rq.LeaseLeasesRequest,
    12: rq.MemberAttrRequest,
}
_TAG_OF: dict[type, int] = {cls: tag for tag, cls in _TAGS.items()}

# Field kinds: b bytes, i int64, u uint64, o bool, ops list of RequestOp, cmp list of Compare.
_SCHEMAS: dict[type, tuple[tuple[str, str], ...]] = {
    rq.PutRequest: (
        ("key", "b"),
        ("value", "b"),
        ("lease", "i"),
        ("prev_kv", "o"),
        ("ignore_value", "o"),
        ("ignore_lease", "o"),
    ),
    rq.RangeRequest: (
        ("key", "b"),
        ("range_end", "b"),
        ("limit", "i"),
        ("revision", "i"),
        ("sort_order", "i"),
        ("sort_target", "i"),
        ("serializable", "o"),
        ("keys_only", "o"),
        ("count_only", "o"),
        ("min_mod_revision", "i"),
        ("max_mod_revision", "i"),
        ("min_create_revision", "i"),
        ("max_create_revision", "i"),
    ),
    rq.DeleteRangeRequest: (("key", "b"), ("range_end", "b"), ("prev_kv", "o")),
    rq.Compare: (
        ("key", "b"),
        ("target", "i"),
        ("result", "i"),
        ("value", "b"),
        ("version", "i"),
        ("create_revision", "i"),
        ("mod_revision", "i"),
        ("lease", "i"),
        ("range_end", "b"),
    ),
    rq.TxnRequest: (("compare", "cmp"), ("success", "ops"), ("failure", "ops")),
    rq.CompactionRequest: (("revision", "i"), ("physical", "o")),
    rq.LeaseGrantRequest: (("ttl", "i"), ("id", "i")),
    rq.LeaseRevokeRequest: (("id", "i"),),
    rq.AlarmRequest: (("action", "i"), ("member_id", "u"), ("alarm", "i")),
    rq.LeaseKeepAliveRequest: (("id", "i"),),
    rq.LeaseTimeToLiveRequest: (("id", "i"), ("keys", "o")),
    rq.LeaseLeasesRequest: (),
    rq.MemberAttrRequest: (("member_id", "u"), ("name", "b"), ("client_urls", "b")),
}

_ENCODERS: dict[type, _Encoder] = {}
_DECODERS: dict[type, _Decoder] = {}


def _field_codec(kind: str) -> tuple[Callable[[Any, list[bytes]], None], _Decoder]:
    """Encoder and decoder for one field kind."""
    if kind == "b":

        def enc_b(v: bytes, out: list[bytes]) -> None:
            out.append(_U32.pack(len(v)))
            out.append(v)

        def dec_b(buf: bytes, pos: int) -> tuple[bytes, int]:
            (n,) = _U32.unpack_from(buf, pos)
            pos += 4
            end = pos + n
            if end > len(buf):
                raise ValueError("truncated bytes field")
            return buf[pos:end], end

        return enc_b, dec_b
    if kind in ("i", "u", "o"):
        st = {"i": _I64, "u": _U64, "o": _BOOL}[kind]
        size = st.size
        pack, unpack_from = st.pack, st.unpack_from

        def enc_n(v: Any, out: list[bytes]) -> None:
            out.append(pack(v))

        def dec_n(buf: bytes, pos: int) -> tuple[Any, int]:
            return unpack_from(buf, pos)[0], pos + size

        return enc_n, dec_n
    if kind == "cmp":

        def enc_cmp(v: list[rq.Compare], out: list[bytes]) -> None:
            out.append(_U32.pack(len(v)))
            enc = _ENCODERS[rq.Compare]
            for c in v:
                enc(c, out)

        def dec_cmp(buf: bytes, pos: int) -> tuple[list[rq.Compare], int]:
            (n,) = _U32.unpack_from(buf, pos)
            pos += 4
            dec = _DECODERS[rq.Compare]
            items = []
            for _ in range(n):
                c, pos = dec(buf, pos)
                items.append(c)
            return items, pos

        return enc_cmp, dec_cmp
    if kind == "ops":

        def enc_ops(v: list[Any], out: list[bytes]) -> None:
            out.append(_U32.pack(len(v)))
            for op in v:
                cls = type(op)
                if cls not in (
                    rq.PutRequest,
                    rq.RangeRequest,
                    rq.DeleteRangeRequest,
                    rq.TxnRequest,
                ):
                    raise TypeError(f"not a txn operation: {cls.__name__}")
                out.append(bytes((_TAG_OF[cls],)))
                _ENCODERS[cls](op, out)

        def dec_ops(buf: bytes, pos: int) -> tuple[list[Any], int]:
            (n,) = _U32.unpack_from(buf, pos)
            pos += 4
            items = []
            for _ in range(n):
                cls = _TAGS[buf[pos]]
                op, pos = _DECODERS[cls](buf, pos + 1)
                items.append(op)
            return items, pos

        return enc_ops, dec_ops
    raise ValueError(f"unknown field kind {kind!r}")


def _compile(cls: type, schema: tuple[tuple[str, str], ...]) -> tuple[_Encoder, _Decoder]:
    names = [name for name, _ in schema]
    codecs = [_field_codec(kind) for _, kind in schema]
    encs = list(zip(names, [c[0] for c in codecs], strict=True))
    decs = [c[1] for c in codecs]

    def encode(obj: Any, out: list[bytes]) -> None:
        for name, enc in encs:
            enc(getattr(obj, name), out)

    def decode(buf: bytes, pos: int) -> tuple[Any, int]:
        values = []
        for dec in decs:
            v, pos = dec(buf, pos)
            values.append(v)
        return cls(*values), pos

    return encode, decode


for _cls, _schema in _SCHEMAS.items():
    _ENCODERS[_cls], _DECODERS[_cls] = _compile(_cls, _schema)

# Fast path for the request that dominates load: a put (one struct call each way).
_PUT_TAG = _TAG_OF[rq.PutRequest]
_PUT_TAIL = struct.Struct("<q???")


def encode_request(request_id: int, req: Any) -> bytes:
    """One request -> Raft entry data (request_id ties the apply result to its waiter)."""
    cls = type(req)
    if cls is rq.PutRequest:
        key, value = req.key, req.value
        return b"".join(
            (
                _HEADER.pack(FORMAT, request_id, _PUT_TAG),
                _U32.pack(len(key)),
                key,
                _U32.pack(len(value)),
                value,
                _PUT_TAIL.pack(req.lease, req.prev_kv, req.ignore_value, req.ignore_lease),
            )
        )
    tag = _TAG_OF.get(cls)
    if tag is None:
        raise TypeError(f"not a replicated request: {cls.__name__}")
    out = [_HEADER.pack(FORMAT, request_id, tag)]
    _ENCODERS[cls](req, out)
    return b"".join(out)


def decode_request(data: bytes) -> tuple[int, Any]:
    """Raft entry data -> (request_id, request); raises ErrUndecodable on garbage."""
    try:
        fmt, request_id, tag = _HEADER.unpack_from(data, 0)
        if fmt != FORMAT:
            raise ValueError(f"unknown format {fmt}")
        if tag == _PUT_TAG:
            pos = 10
            (n,) = _U32.unpack_from(data, pos)
            key = data[pos + 4 : pos + 4 + n]
            pos += 4 + n
            (m,) = _U32.unpack_from(data, pos)
            value = data[pos + 4 : pos + 4 + m]
            pos += 4 + m
            lease, prev_kv, ignore_value, ignore_lease = _PUT_TAIL.unpack_from(data, pos)
            pos += _PUT_TAIL.size
            req: Any = rq.PutRequest(key, value, lease, prev_kv, ignore_value, ignore_lease)
        else:
            req, pos = _DECODERS[_TAGS[tag]](data, 10)
        if pos != len(data):
            raise ValueError(f"{len(data) - pos} trailing bytes")
    except Exception as err:  # whatever the bytes hold, the answer is one error value
        raise ErrUndecodable(f"raftmon: undecodable raft entry: {err}") from err
    return request_id, req


def encode_retry(data: bytes, since: int) -> bytes:
    """A retry of the entry data `data`, whose first copy was proposed when the proposer
    had applied up to `since` (so the first copy, if ever committed, is above it)."""
    return _RETRY_HEADER.pack(RETRY_FORMAT, since) + data


def split_retry(data: bytes) -> tuple[int, bytes]:
    """A retry's (since, first copy's data); raises ErrUndecodable on garbage."""
    try:
        fmt, since = _RETRY_HEADER.unpack_from(data, 0)
    except struct.error as err:
        raise ErrUndecodable(f"raftmon: undecodable raft entry: {err}") from err
    if fmt != RETRY_FORMAT:
        raise ErrUndecodable(f"raftmon: undecodable raft entry: not a retry (format {fmt})")
    return since, data[_RETRY_HEADER.size :]
