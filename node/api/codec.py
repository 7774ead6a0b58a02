"""etcd v3 gateway JSON <-> the state machine's request and response values.

The JSON is grpc-gateway's rendering of etcd's protobufs: keys and values are
base64, int64 fields are strings (numbers are accepted on input, as the
gateway does), enums are names (numbers accepted), and zero/empty fields are
left out of responses. Decoding errors raise `EtcdError` with the gateway's
wording ("illegal base64 data at input byte N", "unexpected EOF").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from node.api.errors import EtcdError, invalid_argument
from node.mvcc import requests as rq

if TYPE_CHECKING:
    from collections.abc import Callable

_B64_ALPHABET = re.compile(rb"[^A-Za-z0-9+/=\r\n]")


# ---- primitives ---------------------------------------------------------------
def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty request.

    grpc-gateway reads one JSON value with Go's json.Decoder, so bytes after it are
    ignored and syntax errors carry Go's wording (`go_syntax_error`).
    """
    if not raw.strip():
        return {}
    try:
        text = raw.decode()
        body, _end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
    except json.JSONDecodeError as err:
        raise invalid_argument(go_syntax_error(err)) from None
    except UnicodeDecodeError:
        raise invalid_argument("invalid UTF-8 in request body") from None
    if not isinstance(body, dict):
        kind = go_json_type(body)
        raise invalid_argument(
            f"json: cannot unmarshal {kind} into Go value of type map[string]json.RawMessage"
        )
    return body


_DECODER = json.JSONDecoder()
# Python's JSONDecodeError.msg -> what Go's decoder says about the character at err.pos.
_GO_CONTEXT = {
    "Expecting property name enclosed in double quotes": (
        "looking for beginning of object key string"
    ),
    "Expecting value": "looking for beginning of value",
    "Expecting ':' delimiter": "after object key",
    "Invalid control character at": "in string literal",
    "Invalid \\escape": "in string escape code",
}


def go_syntax_error(err: json.JSONDecodeError) -> str:
    """Go's encoding/json message for the syntax error Python found (same position)."""
    doc, pos = err.doc, err.pos
    if pos >= len(doc.rstrip()) or err.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    char = doc[pos]
    if err.msg.startswith("Invalid \\escape") and pos + 1 < len(doc):
        char = doc[pos + 1]  # Python points at the backslash, Go at the bad escape letter
    if err.msg == "Expecting ',' delimiter":
        inside = _innermost_container(doc, pos)
        where = "after array element" if inside == "[" else "after object key:value pair"
        return f"invalid character {_go_quote(char)} {where}"
    for prefix, where in _GO_CONTEXT.items():
        if err.msg.startswith(prefix):
            return f"invalid character {_go_quote(char)} {where}"
    return f"invalid character {_go_quote(char)} looking for beginning of value"


def _innermost_container(doc: str, pos: int) -> str:
    """'[' or '{': the container open at `pos` (strings skipped), for Go's wording."""
    stack: list[str] = []
    in_string = escaped = False
    for c in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            stack.append(c)
        elif c in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else "{"


def _go_quote(char: str) -> str:
    """Go's quoteChar: 'x', with '\\'' and '\\\\' escaped and control characters spelled out."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    if char == "\\":
        return "'\\\\'"
    if char.isprintable():
        return f"'{char}'"
    return "'" + json.dumps(char)[1:-1] + "'"


def go_json_type(value: Any) -> str:
    """The JSON type name Go's decoder uses in "cannot unmarshal X into ..." errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def b64decode(value: Any, field: str = "") -> bytes:
    """Strict standard base64, as Go's encoding/json decodes []byte."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise invalid_argument(
            f"json: cannot unmarshal {go_json_type(value)} into Go value of type []uint8"
        )
    data = value.encode("ascii", "replace")
    try:
        return binascii.a2b_base64(data, strict_mode=True) if data else b""
    except binascii.Error:
        bad = _B64_ALPHABET.search(data)
        if bad is not None:
            pos = bad.start()
        else:
            stripped = data.rstrip(b"=")
            pos = min(len(stripped), (len(data) // 4) * 4)
        raise invalid_argument(f"illegal base64 data at input byte {pos}") from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_int(value: Any, field: str) -> int:
    """int64 fields come as JSON strings or numbers."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise invalid_argument(f"json: cannot unmarshal bool into Go value of type int64 ({field})")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise invalid_argument(f"json: invalid value {value!r} for int64 field {field}")


def to_bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise invalid_argument(f"json: cannot unmarshal {value!r} into Go value of type bool ({field})")


def to_enum(value: Any, enum_type: Any, field: str) -> int:
    """Enum fields accept the protobuf name or its number."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(enum_type[value])
        except KeyError:
            pass
    raise invalid_argument(f"unknown value {value!r} for enum {field}")


# ---- requests -----------------------------------------------------------------
def put_request(body: dict[str, Any]) -> rq.PutRequest:
    return rq.PutRequest(
        key=b64decode(body.get("key"), "key"),
        value=b64decode(body.get("value"), "value"),
        lease=to_int(body.get("lease"), "lease"),
        prev_kv=to_bool(body.get("prev_kv"), "prev_kv"),
        ignore_value=to_bool(body.get("ignore_value"), "ignore_value"),
        ignore_lease=to_bool(body.get("ignore_lease"), "ignore_lease"),
    )


def range_request(body: dict[str, Any]) -> rq.RangeRequest:
    return rq.RangeRequest(
        key=b64decode(body.get("key"), "key"),
        range_end=b64decode(body.get("range_end"), "range_end"),
        limit=to_int(body.get("limit"), "limit"),
        revision=to_int(body.get("revision"), "revision"),
        sort_order=to_enum(body.get("sort_order"), rq.SortOrder, "sort_order"),
        sort_target=to_enum(body.get("sort_target"), rq.SortTarget, "sort_target"),
        serializable=to_bool(body.get("serializable"), "serializable"),
        keys_only=to_bool(body.get("keys_only"), "keys_only"),
        count_only=to_bool(body.get("count_only"), "count_only"),
        min_mod_revision=to_int(body.get("min_mod_revision"), "min_mod_revision"),
        max_mod_revision=to_int(body.get("max_mod_revision"), "max_mod_revision"),
        min_create_revision=to_int(body.get("min_create_revision"), "min_create_revision"),
        max_create_revision=to_int(body.get("max_create_revision"), "max_create_revision"),
    )


def delete_range_request(body: dict[str, Any]) -> rq.DeleteRangeRequest:
    return rq.DeleteRangeRequest(
        key=b64decode(body.get("key"), "key"),
        range_end=b64decode(body.get("range_end"), "range_end"),
        prev_kv=to_bool(body.get("prev_kv"), "prev_kv"),
    )


def compare(body: dict[str, Any]) -> rq.Compare:
    return rq.Compare(
        key=b64decode(body.get("key"), "key"),
        range_end=b64decode(body.get("range_end"), "range_end"),
        target=to_enum(body.get("target"), rq.CompareTarget, "target"),
        result=to_enum(body.get("result"), rq.CompareResult, "result"),
        value=b64decode(body.get("value"), "value"),
        version=to_int(body.get("version"), "version"),
        create_revision=to_int(body.get("create_revision"), "create_revision"),
        mod_revision=to_int(body.get("mod_revision"), "mod_revision"),
        lease=to_int(body.get("lease"), "lease"),
    )


_OPS: dict[str, Callable[[dict[str, Any]], rq.RequestOp]] = {}


def request_op(body: Any) -> rq.RequestOp:
    if not isinstance(body, dict) or len(body) != 1:
        raise invalid_argument(
            "txn operation must hold exactly one of request_put, "
            "request_range, request_delete_range, request_txn"
        )
    ((name, inner),) = body.items()
    parse = _OPS.get(name)
    if parse is None or not isinstance(inner, dict):
        raise invalid_argument(f"unknown txn operation {name!r}")
    return parse(inner)


def _list(body: dict[str, Any], field: str) -> list[Any]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_argument(f"json: cannot unmarshal {field} into a list")
    return value


def txn_request(body: dict[str, Any]) -> rq.TxnRequest:
    return rq.TxnRequest(
        compare=[compare(c) for c in _list(body, "compare") if isinstance(c, dict)],
        success=[request_op(op) for op in _list(body, "success")],
        failure=[request_op(op) for op in _list(body, "failure")],
    )


_OPS.update(
    request_put=put_request,
    request_range=range_request,
    request_delete_range=delete_range_request,
    request_txn=txn_request,
)


def compaction_request(body: dict[str, Any]) -> rq.CompactionRequest:
    return rq.CompactionRequest(
        revision=to_int(body.get("revision"), "revision"),
        physical=to_bool(body.get("physical"), "physical"),
    )


def lease_id(body: dict[str, Any]) -> int:
    return to_int(body.get("ID"), "ID")


def watch_create_request(body: dict[str, Any]) -> rq.WatchCreateRequest:
    filters = [to_enum(f, rq.WatchFilter, "filters") for f in _list(body, "filters")]
    return rq.WatchCreateRequest(
        key=b64decode(body.get("key"), "key"),
        range_end=b64decode(body.get("range_end"), "range_end"),
        start_revision=to_int(body.get("start_revision"), "start_revision"),
        progress_notify=to_bool(body.get("progress_notify"), "progress_notify"),
        filters=filters,
        prev_kv=to_bool(body.get("prev_kv"), "prev_kv"),
        watch_id=to_int(body.get("watch_id"), "watch_id"),
    )


# ---- responses --------------------------------------------------------------------
def kv_json(kv: rq.KeyValue) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64(kv.key)}
    if kv.create_revision:
        out["create_revision"] = str(kv.create_revision)
    if kv.mod_revision:
        out["mod_revision"] = str(kv.mod_revision)
    if kv.version:
        out["version"] = str(kv.version)
    if kv.value:
        out["value"] = b64(kv.value)
    if kv.lease:
        out["lease"] = str(kv.lease)
    return out


def put_json(resp: rq.PutResponse, header: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header}
    if resp.prev_kv is not None:
        out["prev_kv"] = kv_json(resp.prev_kv)
    return out


def range_json(resp: rq.RangeResponse, header: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header}
    if resp.kvs:
        out["kvs"] = [kv_json(kv) for kv in resp.kvs]
    if resp.more:
        out["more"] = True
    if resp.count:
        out["count"] = str(resp.count)
    return out


def delete_range_json(resp: rq.DeleteRangeResponse, header: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header}
    if resp.deleted:
        out["deleted"] = str(resp.deleted)
    if resp.prev_kvs:
        out["prev_kvs"] = [kv_json(kv) for kv in resp.prev_kvs]
    return out


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
    out: dict[str, Any] = {"header": header}
    if resp.succeeded:
        out["succeeded"] = True
    if resp.responses:
        out["responses"] = [response_op(r) for r in resp.responses]
    return out


def event_json(event: rq.Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if event.type == rq.EventType.DELETE:
        out["type"] = "DELETE"
    out["kv"] = kv_json(event.kv)
    if event.prev_kv is not None:
        out["prev_kv"] = kv_json(event.prev_kv)
    return out


def watch_json(resp: rq.WatchResponse, header: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header}
    if resp.watch_id:
        out["watch_id"] = str(resp.watch_id)
    if resp.created:
        out["created"] = True
    if resp.canceled:
        out["canceled"] = True
    if resp.compact_revision:
        out["compact_revision"] = str(resp.compact_revision)
    if resp.cancel_reason:
        out["cancel_reason"] = resp.cancel_reason
    if resp.events:
        out["events"] = [event_json(e) for e in resp.events]
    return {"result": out}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


__all__ = ["EtcdError"]
