"""etcd v3's HTTP/JSON gateway: the same paths, JSON and errors as etcd 3.4.

Handlers stay thin: parse etcd JSON -> call the KV service -> render etcd JSON.
Every call is counted the way etcd's gRPC interceptors count gateway calls
(grpc_server_started_total / handled_total under etcd's service and method
names) and timed end to end into etcd_server_request_duration_seconds. Errors
are raised as etcd's error values (node.errors) and rendered in one place,
`error_response`, with the status node.api.errors gives them.
Paths are served under /v3/ and, as etcd 3.4 does, /v3beta/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from node.api import codec, watchreq
from node.api.errors import NOT_FOUND_PATH, GrpcCode, Status, status
from node.api.jsonstream import MessageSplitter, MessageTooLarge
from node.api.observer import unary_call_finished
from node.errors import ErrInvalidRequest, ErrMessageTooLarge, EtcdError
from node.mvcc import requests as rq
from node.server.proposals import GRPC_OVERHEAD_BYTES

if TYPE_CHECKING:
    from node.api.observer import DurationT, GatewayObserver, RpcT
    from node.fairness import TurnShare
    from node.server import KVService, WatchBridge
    from node.server.kv_service import MemberInfo

log = logging.getLogger(__name__)

# A handler answers a dict to encode, or bytes it encoded itself (a large range, in slices).
Handler = Callable[["KVService", dict[str, Any]], Awaitable[dict[str, Any] | bytes]]

# ---- handlers: body dict -> response dict --------------------------------------------


async def kv_put(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.put(codec.put_request(body))
    return codec.put_json(resp, svc.header(resp.revision))


async def kv_range(svc: KVService, body: dict[str, Any]) -> dict[str, Any] | bytes:
    resp = await svc.range(codec.range_request(body))
    header = svc.header(resp.revision)
    if len(resp.kvs) <= ENCODE_SLICE:
        return codec.range_json(resp, header)
    return await _encode_range(svc.client_share, resp, header)


ENCODE_SLICE = 500  # key-values encoded per turn of the client share (~3 ms)


async def _encode_range(share: TurnShare, resp: rq.RangeResponse, header: dict[str, str]) -> bytes:
    """`codec.dumps(codec.range_json(resp, header))`, byte for byte, a slice per turn.

    Encoded at once, a 100k-key answer (23 MB of JSON) holds the loop for half a second.
    """
    kvs, resp.kvs = resp.kvs, []
    rest = codec.dumps(codec.range_json(resp, {}))  # {"header":{},"more":..,"count":..}
    parts = [codec.dumps({"header": header})[:-1], b',"kvs":[']
    for i in range(0, len(kvs), ENCODE_SLICE):
        await share.turn()
        if i:
            parts.append(b",")
        # one encoder call per slice (json.dumps builds an encoder per call), brackets cut
        parts.append(codec.dumps([codec.kv_json(kv) for kv in kvs[i : i + ENCODE_SLICE]])[1:-1])
    tail = rest[len(b'{"header":{}') :]  # b"}" or b',"more":true,"count":"7"}'
    parts.append(b"]" + tail)
    return b"".join(parts)


async def kv_deleterange(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.delete_range(codec.delete_range_request(body))
    return codec.delete_range_json(resp, svc.header(resp.revision))


async def kv_txn(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.txn(codec.txn_request(body))
    return codec.txn_json(resp, svc.header(resp.revision))


async def kv_compaction(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.compact(codec.compaction_request(body))
    return {"header": svc.header(resp.revision)}


def _lease_json(svc: KVService, revision: int, lease_id: int, ttl: int) -> dict[str, Any]:
    """The fields every lease answer starts with (int64s as strings, as jsonpb writes them)."""
    return {"header": svc.header(revision), "ID": str(lease_id), "TTL": str(ttl)}


async def lease_grant(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.lease_grant(codec.lease_grant_request(body))
    out = _lease_json(svc, resp.revision, resp.id, resp.ttl)
    if resp.error:
        out["error"] = resp.error
    return out


async def lease_revoke(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.lease_revoke(rq.LeaseRevokeRequest(id=codec.lease_id(body)))
    return {"header": svc.header(resp.revision)}


async def lease_timetolive(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.lease_time_to_live(codec.lease_time_to_live_request(body))
    out = _lease_json(svc, resp.revision, resp.id, resp.ttl)
    if resp.granted_ttl:
        out["grantedTTL"] = str(resp.granted_ttl)
    if resp.keys:
        out["keys"] = [codec.b64(k) for k in resp.keys]
    return out


async def lease_leases(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.lease_leases()
    out: dict[str, Any] = {"header": svc.header(resp.revision)}
    if resp.leases:
        out["leases"] = [{"ID": str(i)} for i in resp.leases]
    return out


async def maintenance_status(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    st = await svc.status()
    out: dict[str, Any] = {
        "header": svc.header(st.revision),
        "version": st.version,
        "dbSize": str(st.db_size),
        "leader": str(st.leader),
        "raftIndex": str(st.raft_index),
        "raftTerm": str(st.raft_term),
        "raftAppliedIndex": str(st.raft_applied_index),
        "dbSizeInUse": str(st.db_size_in_use),
    }
    if st.errors:
        out["errors"] = st.errors
    return out


async def maintenance_defragment(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    await svc.defragment()
    return {"header": svc.header()}


async def maintenance_alarm(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await svc.alarm(codec.alarm_request(body))
    if not resp.alarms:
        return {}  # etcd 3.4 answers an empty alarm list with an empty object
    return {  # and a list without a header: its maintenance server passes the applier's answer
        "alarms": [
            # jsonpb leaves out a zero memberID: the corruption check's alarm names member 0
            {"memberID": str(a.member_id), "alarm": rq.AlarmType(a.alarm).name}
            if a.member_id
            else {"alarm": rq.AlarmType(a.alarm).name}
            for a in resp.alarms
        ],
    }


async def maintenance_transfer_leadership(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    await svc.transfer_leadership(codec.move_leader_target(body))
    return {"header": svc.header()}


async def maintenance_hash(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    """etcd 3.4 declares Hash and HashKV both at /v3/maintenance/hash; its gateway serves
    Hash there (the body is ignored), so HashKV is gRPC-only, as in etcd."""
    resp = await svc.hash()
    out: dict[str, Any] = {"header": svc.header(resp.revision)}
    if resp.hash:
        out["hash"] = resp.hash  # uint32: a JSON number (jsonpb leaves out a zero)
    return out


def _member_json(m: MemberInfo) -> dict[str, Any]:
    """etcd's Member in jsonpb: empty fields (an unstarted member's name) left out."""
    entry: dict[str, Any] = {"ID": str(m.id)}
    if m.name:
        entry["name"] = m.name
    if m.peer_urls:
        entry["peerURLs"] = m.peer_urls
    if m.client_urls:
        entry["clientURLs"] = m.client_urls
    if m.is_learner:
        entry["isLearner"] = True
    return entry


async def _members_answer(svc: KVService, **extra: Any) -> dict[str, Any]:
    header = svc.header()
    header.pop("revision")  # etcd's cluster calls answer a header without a revision
    members = [_member_json(m) for m in await svc.member_list()]
    return {"header": header, **extra, "members": members}


async def cluster_member_list(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    return await _members_answer(svc)


async def cluster_member_add(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    added = await svc.member_add(codec.peer_urls(body), codec.member_add_learner(body))
    return await _members_answer(svc, member=_member_json(added))


async def cluster_member_remove(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    await svc.member_remove(codec.member_id(body))
    return await _members_answer(svc)


async def cluster_member_update(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    await svc.member_update(codec.member_id(body), codec.peer_urls(body))
    return await _members_answer(svc)


async def cluster_member_promote(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    await svc.member_promote(codec.member_id(body))
    return await _members_answer(svc)


# path (after /v3), gRPC method, request type for the duration histogram, handler
_Call = tuple[str, str, str | None, Handler]


def _service(service: str, *calls: _Call) -> list[tuple[str, str, str, str | None, Handler]]:
    """The routes of one gRPC service (etcdserverpb.KV, ...), as the gateway maps them."""
    return [(path, service, method, req_type, handler) for path, method, req_type, handler in calls]


def _also_under_kv(call: _Call) -> tuple[_Call, _Call]:
    """etcd's gateway serves three lease calls twice: /v3/lease/... and /v3/kv/lease/...."""
    path, method, req_type, handler = call
    return call, ("/kv" + path, method, req_type, handler)


UNARY_ROUTES = [
    *_service(
        "etcdserverpb.KV",
        ("/kv/put", "Put", "Put", kv_put),
        ("/kv/range", "Range", "Range", kv_range),
        ("/kv/deleterange", "DeleteRange", "DeleteRange", kv_deleterange),
        ("/kv/txn", "Txn", "Txn", kv_txn),
        ("/kv/compaction", "Compact", "Compaction", kv_compaction),
    ),
    *_service(
        "etcdserverpb.Lease",
        ("/lease/grant", "LeaseGrant", "LeaseGrant", lease_grant),
        *_also_under_kv(("/lease/revoke", "LeaseRevoke", "LeaseRevoke", lease_revoke)),
        *_also_under_kv(
            ("/lease/timetolive", "LeaseTimeToLive", "LeaseTimeToLive", lease_timetolive)
        ),
        *_also_under_kv(("/lease/leases", "LeaseLeases", "LeaseLeases", lease_leases)),
    ),
    *_service(
        "etcdserverpb.Maintenance",
        ("/maintenance/status", "Status", None, maintenance_status),
        ("/maintenance/defragment", "Defragment", None, maintenance_defragment),
        ("/maintenance/alarm", "Alarm", "Alarm", maintenance_alarm),
        ("/maintenance/hash", "Hash", None, maintenance_hash),
        ("/maintenance/transfer-leadership", "MoveLeader", None, maintenance_transfer_leadership),
    ),
    *_service(
        "etcdserverpb.Cluster",
        ("/cluster/member/add", "MemberAdd", None, cluster_member_add),
        ("/cluster/member/remove", "MemberRemove", None, cluster_member_remove),
        ("/cluster/member/update", "MemberUpdate", None, cluster_member_update),
        ("/cluster/member/list", "MemberList", None, cluster_member_list),
        ("/cluster/member/promote", "MemberPromote", None, cluster_member_promote),
    ),
]


def error_response(st: Status) -> web.Response:
    return web.Response(body=st.body(), status=st.http_status, content_type="application/json")


async def read_body(request: web.Request, max_request_bytes: int) -> bytes:
    """The raw body, refusing what etcd's gRPC layer would refuse as too large."""
    limit = max_request_bytes + GRPC_OVERHEAD_BYTES
    # base64 makes JSON ~4/3 of the protobuf size etcd measures; allow for it here
    # and check the decoded size precisely once parsed.
    length = request.content_length
    if length is not None and length * 3 // 4 > limit + 1024:
        raise ErrMessageTooLarge(length * 3 // 4, limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ErrMessageTooLarge(limit + 1, limit) from None


def make_unary(
    svc: KVService,
    handler: Handler,
    rpc: RpcT,
    duration: DurationT | None,
    metrics: GatewayObserver[RpcT, DurationT],
    max_request_bytes: int,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler with body limits, etcd error rendering and gRPC-style metrics."""

    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        code = GrpcCode.OK
        sent = 0
        try:
            raw = await read_body(request, max_request_bytes)
            metrics.request_started(rpc, len(raw))
            body = codec.parse_body(raw)
            result = await handler(svc, body)
            out = result if isinstance(result, bytes) else codec.dumps(result)
            sent = len(out)
            return web.Response(body=out, content_type="application/json")
        except asyncio.CancelledError:
            code = GrpcCode.CANCELED
            raise
        except Exception as err:
            st = status(err)
            if st.code == GrpcCode.UNKNOWN and not isinstance(err, EtcdError):
                # an unexpected bug: answered etcd-style, logged loudly
                log.exception("request failed", extra={"fields": {"path": request.path}})
            code = st.code
            return error_response(st)
        finally:
            unary_call_finished(metrics, rpc, duration, code.title, started, sent)

    return handle


# ---- streams: watch and lease keep-alive ----------------------------------------------
# Each message in and out is counted as go-grpc-prometheus counts a stream's RecvMsg and
# SendMsg (grpc_server_msg_received_total / _sent_total), and its body bytes go to
# etcd_network_client_grpc_{received,sent}_bytes_total, as a unary call's do.
def stream_message_limit(max_request_bytes: int) -> tuple[int, int]:
    """(gRPC limit in bytes, longest JSON text of one stream message we buffer for it).

    base64 makes JSON ~4/3 of the protobuf etcd measures, as `read_body` allows for.
    """
    limit = max_request_bytes + GRPC_OVERHEAD_BYTES
    return limit, limit * 4 // 3 + 1024


STREAM_BATCH = 64  # messages of one stream handled per turn of the event loop


def _decode_message(text: str) -> Any:
    """One complete message, decoded as Go's json.Decoder decodes it (node.api.codec)."""
    found = codec.next_message(text.encode())
    if found is None:  # a bare scalar cut by the end of the body
        raise ErrInvalidRequest("unexpected EOF")
    return found[0]


async def _stream_batches(
    request: web.Request,
    rpc: RpcT,
    metrics: GatewayObserver[RpcT, DurationT],
    max_request_bytes: int,
) -> AsyncIterator[list[Any]]:
    """Lists of JSON objects from a streamed request body, as grpc-gateway decodes them.

    Linear in the body's bytes whatever its chunking (see node.api.jsonstream); a
    message longer than the gRPC limit allows is refused as gRPC refuses it. A list
    holds at most STREAM_BATCH messages: the caller yields to the event loop between
    lists, so one client's flood is handled a slice at a time, between the Raft
    loop's turns and other clients' (a stream of keep-alives handled in one go starves
    the tick, and the leader loses its leadership).
    """
    limit, max_chars = stream_message_limit(max_request_bytes)
    splitter = MessageSplitter(max_chars)
    try:
        async for chunk in request.content.iter_any():
            texts = splitter.feed(chunk)
            metrics.stream_received(rpc, len(texts), len(chunk))
            for i in range(0, len(texts), STREAM_BATCH):
                yield [_decode_message(t) for t in texts[i : i + STREAM_BATCH]]
        texts, unfinished = splitter.end()
    except MessageTooLarge as err:
        raise ErrMessageTooLarge(err.size * 3 // 4, limit) from None
    if texts:
        yield [_decode_message(t) for t in texts]
    if unfinished:
        raise ErrInvalidRequest("unexpected EOF")


async def _stream_requests(
    request: web.Request,
    rpc: RpcT,
    metrics: GatewayObserver[RpcT, DurationT],
    max_request_bytes: int,
    share: TurnShare,
) -> AsyncIterator[Any]:
    """The objects of `_stream_batches` one by one, a batch per turn of `share`."""
    async for batch in _stream_batches(request, rpc, metrics, max_request_bytes):
        await share.turn()
        for obj in batch:
            yield obj


async def _send(
    response: web.StreamResponse, data: bytes, rpc: RpcT, metrics: GatewayObserver[RpcT, DurationT]
) -> None:
    """Write one stream message; it is counted once the write succeeded."""
    await response.write(data)
    metrics.stream_sent(rpc, len(data))


async def _watch_messages(
    requests: AsyncIterator[Any], limit: int
) -> AsyncIterator[codec.WatchRequest | None]:
    """Decoded watch requests; one above the gRPC limit raises ResourceExhausted."""
    async for body in requests:
        msg = codec.watch_request(body)
        size = watchreq.encoded_size(msg)
        if size > limit:
            raise ErrMessageTooLarge(size, limit)
        yield msg


def make_watch(
    svc: KVService, rpc: RpcT, metrics: GatewayObserver[RpcT, DurationT], share: TurnShare
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    limit, _ = stream_message_limit(svc.max_request_bytes)

    async def handle(request: web.Request) -> web.StreamResponse:
        metrics.stream_started(rpc)
        started = time.perf_counter()
        code = "OK"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        stream = svc.open_watch_stream()
        try:
            messages = _watch_messages(
                _stream_requests(request, rpc, metrics, svc.max_request_bytes, share), limit
            )
            try:
                first = await anext(messages)
            except StopAsyncIteration:
                raise ErrInvalidRequest("unexpected EOF") from None
            except EtcdError as err:
                st = status(err)
                code = st.code.title
                if st.code == GrpcCode.RESOURCE_EXHAUSTED:  # the server's refusal
                    return web.Response(
                        body=watchreq.stream_error_chunk(st),
                        status=st.http_status,
                        content_type="application/json",
                    )
                return error_response(watchreq.first_message_error(st))
            await response.prepare(request)
            reader = asyncio.create_task(_watch_control(stream, first, messages))
            failed: Status | None = None
            try:
                sent = 0
                async for result in stream.results():
                    if sent % STREAM_BATCH == 0:
                        await share.turn()  # a long backlog is written a slice per turn
                    header = svc.header(result.revision)
                    if not result.revision:  # a compacted watcher's cancel: etcd's has none
                        del header["revision"]
                    line = codec.dumps(codec.watch_json(result, header))
                    await _send(response, line + b"\n", rpc, metrics)
                    sent += 1
            finally:
                if not reader.done():
                    reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    failed = await reader
            if failed is not None:  # the server ended the stream (a message too large)
                code = failed.code.title
                await _send(response, watchreq.stream_error_chunk(failed), rpc, metrics)
        except EtcdError as err:
            st = status(err)
            code = st.code.title
            if not response.prepared:
                return error_response(st)
        except (ConnectionResetError, asyncio.CancelledError):
            code = "Canceled"
            raise
        finally:
            stream.close()
            metrics.stream_finished(rpc, code)
            if rpc.timed:
                metrics.call_handled(rpc, time.perf_counter() - started)
        return response

    return handle


async def _watch_control(
    stream: WatchBridge,
    first: codec.WatchRequest | None,
    rest: AsyncIterator[codec.WatchRequest | None],
) -> Status | None:
    """Apply create/cancel/progress requests from the client's body as they arrive.

    Returns the error that ends the whole stream (a message above the gRPC limit),
    after closing the stream so the sender stops; a message that does not decode
    only stops the reading, as grpc-gateway stops (the watchers keep going), and
    so does the end of the body.
    """
    _watch_request(stream, first)
    try:
        async for msg in rest:
            _watch_request(stream, msg)
    except EtcdError as err:
        st = status(err)
        if st.code == GrpcCode.RESOURCE_EXHAUSTED:
            stream.close()
            return st
        log.debug(
            "watch request does not decode; reading stops", extra={"fields": {"error": err.message}}
        )
    except (ConnectionResetError, aiohttp.ClientPayloadError):
        pass
    return None


def _watch_request(stream: WatchBridge, msg: codec.WatchRequest | None) -> None:
    if isinstance(msg, rq.WatchCreateRequest):
        stream.create(msg)
    elif isinstance(msg, codec.WatchCancel):
        stream.cancel(msg.watch_id)
    elif isinstance(msg, codec.WatchProgress):
        stream.progress()


def make_keepalive(
    svc: KVService, rpc: RpcT, metrics: GatewayObserver[RpcT, DurationT], share: TurnShare
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        metrics.stream_started(rpc)
        started = time.perf_counter()
        code = "OK"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        lines: list[bytes] = []
        try:
            batches = _stream_batches(request, rpc, metrics, svc.max_request_bytes)
            async for batch in batches:
                # One batch per turn of the loop's client share; its answers leave in
                # one write (one chunk, one syscall).
                await share.turn()
                for obj in batch:
                    req = rq.LeaseKeepAliveRequest(id=codec.lease_id(obj))
                    resp = await svc.lease_keepalive(req)
                    lines.append(_keepalive_line(svc, resp))
                if not response.prepared:
                    await response.prepare(request)
                await _send_lines(response, lines, rpc, metrics)
        except EtcdError as err:
            st = status(err)
            code = st.code.title
            if not response.prepared:
                if not lines:
                    return error_response(st)
                await response.prepare(request)
            lines.append(codec.dumps({"error": json.loads(st.body())}) + b"\n")
            await _send_lines(response, lines, rpc, metrics)
        except (ConnectionResetError, asyncio.CancelledError):
            code = "Canceled"
            raise
        finally:
            metrics.stream_finished(rpc, code)
            if rpc.timed:
                metrics.call_handled(rpc, time.perf_counter() - started)
        if not response.prepared:
            await response.prepare(request)
        return response

    return handle


def _keepalive_line(svc: KVService, resp: rq.LeaseKeepAliveResponse) -> bytes:
    out = {"header": svc.header(resp.revision), "ID": str(resp.id)}
    if resp.ttl:
        out["TTL"] = str(resp.ttl)
    return codec.dumps({"result": out}) + b"\n"


async def _send_lines(
    response: web.StreamResponse,
    lines: list[bytes],
    rpc: RpcT,
    metrics: GatewayObserver[RpcT, DurationT],
) -> None:
    """Write stream messages at once; each is counted once the write succeeded."""
    if not lines:
        return
    await response.write(b"".join(lines))
    for line in lines:
        metrics.stream_sent(rpc, len(line))
    lines.clear()


# ---- server stream: maintenance snapshot ----------------------------------------------
def snapshot_line(chunk: rq.SnapshotChunk) -> bytes:
    """One SnapshotResponse as grpc-gateway streams it: `{"result":{...}}` and a newline.

    jsonpb leaves out zero values (the last blobs' remaining_bytes) and writes uint64 as
    a string; etcd 3.4 sends no header.
    """
    out: dict[str, Any] = {}
    if chunk.remaining_bytes:
        out["remaining_bytes"] = str(chunk.remaining_bytes)
    if chunk.blob:
        out["blob"] = codec.b64(chunk.blob)
    return codec.dumps({"result": out}) + b"\n"


def make_snapshot(
    svc: KVService, rpc: RpcT, metrics: GatewayObserver[RpcT, DurationT]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """POST /v3/maintenance/snapshot: Maintenance.Snapshot's stream, a line per message."""

    async def handle(request: web.Request) -> web.StreamResponse:
        metrics.stream_started(rpc)
        started = time.perf_counter()
        code = "OK"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            raw = await read_body(request, svc.max_request_bytes)
            metrics.stream_received(rpc, 1, len(raw))
            codec.parse_body(raw)  # SnapshotRequest has no fields; bad JSON is still refused
            async for chunk in svc.snapshot():
                if not response.prepared:
                    await response.prepare(request)
                await _send(response, snapshot_line(chunk), rpc, metrics)
        except (ConnectionResetError, asyncio.CancelledError):
            code = "Canceled"
            raise
        except Exception as err:
            st = status(err)
            code = st.code.title
            if st.code == GrpcCode.UNKNOWN and not isinstance(err, EtcdError):
                log.exception("snapshot failed", extra={"fields": {"path": request.path}})
            if not response.prepared:
                return error_response(st)
            await _send(
                response, codec.dumps({"error": json.loads(st.body())}) + b"\n", rpc, metrics
            )
        finally:
            metrics.stream_finished(rpc, code)
            if rpc.timed:
                metrics.call_handled(rpc, time.perf_counter() - started)
        return response

    return handle


def add_fallback(app: web.Application) -> None:
    """Routing errors in etcd's words instead of aiohttp's; register after every route.

    Unknown paths under the gateway's prefixes answer etcd's JSON error; any other
    unknown path (/v3alpha/... included, which etcd 3.4 no longer serves) gets Go's
    plain "404 page not found", and a wrong method grpc-gateway's "Method Not Allowed".
    A catch-all route rather than a middleware: a middleware wraps every request in
    two more coroutines, this costs nothing until a request misses.
    """
    known = {
        info["path"]
        for resource in app.router.resources()
        if "path" in (info := resource.get_info())
    }

    async def fallback(request: web.Request) -> web.Response:
        if request.path in known:  # the path exists, not with this method
            return web.Response(status=405, text="Method Not Allowed\n")
        if request.path.startswith(GATEWAY_PREFIXES):
            return error_response(NOT_FOUND_PATH)
        return web.Response(status=404, text="404 page not found\n")

    app.router.add_route("*", "/{tail:.*}", fallback)


GATEWAY_PREFIXES = ("/v3/", "/v3beta/")


OPEN_STREAMS = web.AppKey("open_streams", set[asyncio.Task[Any]])


def ended_on_shutdown(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Register a long-lived stream's task so `cancel_streams` can end it on shutdown."""

    async def handle(request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        streams = request.app[OPEN_STREAMS]
        if task is not None:
            streams.add(task)
        try:
            return await handler(request)
        finally:
            if task is not None:
                streams.discard(task)

    return handle


async def cancel_streams(app: web.Application) -> None:
    """On shutdown, end open watch and keep-alive streams at once, as etcd closes them.

    aiohttp waits for running handlers before it closes the listener, and a watch
    waiting for its next event would hold a SIGTERM'd member up for the whole
    shutdown timeout (seen: a member killed after 10 s with one curl watch open).
    """
    streams: set[asyncio.Task[Any]] = app[OPEN_STREAMS]
    for task in list(streams):
        task.cancel()


def add_routes(
    app: web.Application, svc: KVService, metrics: GatewayObserver[RpcT, DurationT]
) -> None:
    """Register every gateway path under /v3 and /v3beta."""
    max_bytes = svc.max_request_bytes
    share = svc.client_share  # one per member: every stream takes its slices from it
    app[OPEN_STREAMS] = set()
    app.on_shutdown.append(cancel_streams)
    for prefix in ("/v3", "/v3beta"):
        for path, service, method, req_type, handler in UNARY_ROUTES:
            rpc = metrics.rpc(service, method)
            duration = metrics.request_duration[req_type] if req_type else None
            app.router.add_post(
                prefix + path, make_unary(svc, handler, rpc, duration, metrics, max_bytes)
            )
        watch_rpc = metrics.rpc("etcdserverpb.Watch", "Watch", "bidi_stream")
        app.router.add_post(
            prefix + "/watch", ended_on_shutdown(make_watch(svc, watch_rpc, metrics, share))
        )
        snapshot_rpc = metrics.rpc("etcdserverpb.Maintenance", "Snapshot", "server_stream")
        app.router.add_post(
            prefix + "/maintenance/snapshot",
            ended_on_shutdown(make_snapshot(svc, snapshot_rpc, metrics)),
        )
        keepalive_rpc = metrics.rpc("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream")
        app.router.add_post(
            prefix + "/lease/keepalive",
            ended_on_shutdown(make_keepalive(svc, keepalive_rpc, metrics, share)),
        )
