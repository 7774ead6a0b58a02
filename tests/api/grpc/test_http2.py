"""node.api.grpc.http2 with real gRPC clients (grpcio's C core) and raw HTTP/2 frames.

The methods here are toys over etcd's messages, served on a loopback socket: what is
checked is the transport (flow control both ways, streams, cancellation, limits,
errors), not the KV service.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.mvccpb import kv_pb2
from node.api.grpc import http2
from node.api.grpc.http2 import GrpcConnection, GrpcFailure, GrpcStream, Method

LIMIT = 64 * 1024


async def big_range(stream: GrpcStream) -> None:
    """A RangeResponse of `limit` values of 64 KiB each: far beyond the default windows."""
    req = await stream.recv_message()
    kvs = [
        kv_pb2.KeyValue(key=b"k%d" % i, value=bytes([i % 251]) * 65536) for i in range(req.limit)
    ]
    await stream.send_message(pb.RangeResponse(kvs=kvs, count=req.limit))


async def echo_watch(stream: GrpcStream) -> None:
    """Answers each create with a response carrying its watch_id (a bidi stream)."""
    async for m in stream:
        await stream.send_message(
            pb.WatchResponse(watch_id=m.create_request.watch_id, created=True)
        )


async def fail(stream: GrpcStream) -> None:
    await stream.recv_message()
    raise GrpcFailure(14, "etcdserver: no leader (ünïcode %)")


async def hang(stream: GrpcStream) -> None:
    await stream.recv_message()
    HANGING.set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        CANCELLED.set()
        raise


HANGING = asyncio.Event()
CANCELLED = asyncio.Event()

METHODS = {
    b"/etcdserverpb.KV/Range": Method(pb.RangeRequest, big_range),
    b"/etcdserverpb.Watch/Watch": Method(pb.WatchRequest, echo_watch, client_streaming=True),
    b"/etcdserverpb.KV/Put": Method(pb.PutRequest, fail),
    b"/etcdserverpb.KV/DeleteRange": Method(pb.DeleteRangeRequest, hang),
}


def _too_large(size: int) -> Exception:
    return GrpcFailure(8, f"grpc: received message larger than max ({size} vs. {LIMIT})")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: GrpcConnection(METHODS, LIMIT, _too_large), "127.0.0.1", 0
    )
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.close()


def _call(channel: grpc.aio.Channel, path: str, reply: Any) -> Any:
    return channel.unary_unary(path, response_deserializer=reply.FromString)


async def test_a_response_larger_than_every_window_arrives_whole(server: str) -> None:
    unlimited = [("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(server, options=unlimited) as ch:
        reply = await _call(ch, "/etcdserverpb.KV/Range", pb.RangeResponse)(
            pb.RangeRequest(key=b"k", limit=200).SerializeToString()
        )
    assert reply.count == 200  # 13 MB through 64 KiB windows
    assert len(reply.kvs) == 200
    assert all(kv.value == bytes([i % 251]) * 65536 for i, kv in enumerate(reply.kvs))


async def test_concurrent_calls_on_one_connection_all_answer(server: str) -> None:
    async with grpc.aio.insecure_channel(server) as ch:
        call = _call(ch, "/etcdserverpb.KV/Range", pb.RangeResponse)
        replies = await asyncio.gather(
            *(call(pb.RangeRequest(limit=n).SerializeToString()) for n in range(1, 30))
        )
    assert [r.count for r in replies] == list(range(1, 30))


async def test_a_bidi_stream_answers_each_message_in_order(server: str) -> None:
    async with grpc.aio.insecure_channel(server) as ch:
        stream = ch.stream_stream(
            "/etcdserverpb.Watch/Watch", response_deserializer=pb.WatchResponse.FromString
        )()
        for i in range(1, 501):
            req = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a", watch_id=i))
            await stream.write(req.SerializeToString())
        await stream.done_writing()
        ids = [r.watch_id async for r in stream]
    assert ids == list(range(1, 501))


async def test_a_failure_is_the_status_and_message_it_names(server: str) -> None:
    async with grpc.aio.insecure_channel(server) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(ch, "/etcdserverpb.KV/Put", pb.PutResponse)(
                pb.PutRequest(key=b"k").SerializeToString()
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "etcdserver: no leader (ünïcode %)"


async def test_an_unknown_method_is_unimplemented(server: str) -> None:
    async with grpc.aio.insecure_channel(server) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(ch, "/etcdserverpb.Auth/UserList", pb.RangeResponse)(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_message_above_the_limit_is_refused_before_it_is_read(server: str) -> None:
    async with grpc.aio.insecure_channel(server) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(ch, "/etcdserverpb.KV/Range", pb.RangeResponse)(
                pb.RangeRequest(key=b"k" * (LIMIT + 10)).SerializeToString()
            )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"vs. {LIMIT})" in caught.value.details()


async def test_a_client_cancel_cancels_the_handler(server: str) -> None:
    HANGING.clear()
    CANCELLED.clear()
    async with grpc.aio.insecure_channel(server) as ch:
        call = _call(ch, "/etcdserverpb.KV/DeleteRange", pb.DeleteRangeResponse)(
            pb.DeleteRangeRequest(key=b"k").SerializeToString()
        )
        await asyncio.wait_for(HANGING.wait(), 10)
        call.cancel()
        await asyncio.wait_for(CANCELLED.wait(), 10)


# ---- raw frames: what a client library would never send -----------------------------------
def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return struct.pack(">HBBBI", n >> 8, n & 0xFF, kind, flags, stream_id) + payload


def _read_frames(sock: socket.socket) -> list[tuple[int, int, int, bytes]]:
    """Frames the server sends until it stops sending for a moment (bounded)."""
    sock.settimeout(1.0)
    data = b""
    for _ in range(50):
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 9:
        hi, lo, kind, flags, sid = struct.unpack(">HBBBI", data[:9])
        n = (hi << 8) | lo
        frames.append((kind, flags, sid, data[9 : 9 + n]))
        data = data[9 + n :]
    return frames


async def _raw(server: str, payload: bytes) -> list[tuple[int, int, int, bytes]]:
    host, port = server.split(":")

    def talk() -> list[tuple[int, int, int, bytes]]:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(payload)
            return _read_frames(sock)

    return await asyncio.to_thread(talk)


async def test_a_ping_is_acknowledged_with_its_payload(server: str) -> None:
    frames = await _raw(
        server, http2.PREFACE + _frame(http2.SETTINGS, 0, 0) + _frame(http2.PING, 0, 0, b"12345678")
    )
    assert (http2.PING, http2.ACK, 0, b"12345678") in frames
    assert any(k == http2.SETTINGS and f == http2.ACK for k, f, _, _ in frames)


async def test_a_garbled_connection_gets_goaway_and_is_closed(server: str) -> None:
    frames = await _raw(
        server, http2.PREFACE + _frame(http2.HEADERS, http2.END_HEADERS, 1, b"\xff\xff\xff\xff")
    )
    assert frames[-1][0] == http2.GOAWAY


async def test_an_oversized_frame_is_a_connection_error(server: str) -> None:
    frames = await _raw(server, http2.PREFACE + _frame(http2.DATA, 0, 1, b"x" * 20000))
    goaway = [f for f in frames if f[0] == http2.GOAWAY]
    assert goaway
    assert struct.unpack(">II", goaway[0][3][:8])[1] == http2.FRAME_SIZE_ERROR
