"""One message of a gateway watch stream, judged as etcd 3.4 judges it.

etcd's gateway decodes each JSON message into a `WatchRequest` before the
server sees it (here: node.api.codec.watch_request), so a message that does
not decode ends the exchange in the gateway's words, with grpc-gateway's codes
(checked against etcd 3.4.23):

- the FIRST message does not decode (bad base64, a string where an object
  belongs, not JSON at all): HTTP 500, `{"error":M,"message":M,"code":2}`;
  grpc-gateway returns the decoder's error as is, which gRPC calls Unknown;
- a LATER message does not decode: the gateway stops reading the body and the
  stream goes on serving the watchers already created;
- a message larger than the server's gRPC limit (--max-request-bytes + 512 KiB,
  measured on the protobuf): the server ends the stream with ResourceExhausted,
  written as grpc-gateway's stream error chunk (429 if nothing was sent yet).
"""

from __future__ import annotations

import http
import json

from node.api import codec
from node.api.errors import GrpcCode, Status
from node.mvcc import requests as rq


def _varint_len(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _bytes_field(data: bytes) -> int:
    return 1 + _varint_len(len(data)) + len(data) if data else 0


def _int_field(value: int) -> int:
    # int64 fields are varints of the two's complement: a negative one takes 10 bytes
    return 1 + _varint_len(value & 0xFFFFFFFFFFFFFFFF) if value else 0


def encoded_size(msg: codec.WatchRequest | None) -> int:
    """The protobuf size of the WatchRequest, which etcd's gRPC limit is measured on."""
    if isinstance(msg, rq.WatchCreateRequest):
        r = msg
        filters = sum(_varint_len(f) for f in r.filters)
        inner = (
            _bytes_field(r.key)
            + _bytes_field(r.range_end)
            + _int_field(r.start_revision)
            + (2 if r.progress_notify else 0)
            + (1 + _varint_len(filters) + filters if r.filters else 0)
            + (2 if r.prev_kv else 0)
            + _int_field(r.watch_id)
        )
    elif isinstance(msg, codec.WatchCancel):
        inner = _int_field(msg.watch_id)
    elif isinstance(msg, codec.WatchProgress):
        inner = 0
    else:
        return 0
    return 1 + _varint_len(inner) + inner


def first_message_error(st: Status) -> Status:
    """A first message that does not decode, as etcd's gateway answers it (see above)."""
    if st.code == GrpcCode.INVALID_ARGUMENT:
        return Status(GrpcCode.UNKNOWN, st.message)
    return st


def stream_error_chunk(err: Status) -> bytes:
    """grpc-gateway v1's stream error: `{"error":{grpc_code,http_code,message,http_status}}`."""
    status = err.http_status
    return json.dumps(
        {
            "error": {
                "grpc_code": int(err.code),
                "http_code": status,
                "message": err.message,
                "http_status": http.HTTPStatus(status).phrase,
            }
        },
        separators=(",", ":"),
    ).encode()
