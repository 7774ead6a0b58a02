"""A one-request call runs as soon as its request is here; its answer leaves packed at once.

node.api.grpc.http2 starts a unary (or server-streaming) call's handler inside the frame
that completes its request, and wraps it in a task only if it suspends; a reply that fits
the client's windows leaves as HEADERS, DATA and trailers in one write. What a client
sees must not change: the same frames, the same statuses, cancellation by RST_STREAM,
and the slow path when the windows are closed.
"""

from __future__ import annotations

import asyncio
import struct

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from node.api.grpc import http2
from node.api.grpc.http2 import GrpcConnection, GrpcFailure, GrpcStream, Method
from tests.api.grpc.frames import PATH, PATH_BLOCK, Wire, frame, frames


def _request(stream_id: int, revision: int) -> bytes:
    """A unary call as grpcio sends it: HEADERS, then the message in DATA with END_STREAM."""
    body = pb.PutRequest(key=b"k", lease=revision).SerializeToString()
    return frame(http2.HEADERS, http2.END_HEADERS, stream_id, PATH_BLOCK) + frame(
        http2.DATA, http2.END_STREAM, stream_id, struct.pack(">BI", 0, len(body)) + body
    )


def _unary(body: object) -> Method:
    """A unary method answering with what `body(request)` returns (as calls.unary does)."""

    async def handler(stream: GrpcStream) -> None:
        request = await stream.recv_message()
        reply = await body(request)  # type: ignore[operator]
        payload = reply.SerializeToString()
        if not stream.answer(payload):
            await stream.send_payload(payload)
            stream.finish()

    return Method(pb.PutRequest, handler)


def _connection(method: Method) -> tuple[GrpcConnection, Wire]:
    conn = GrpcConnection({PATH: method}, 1 << 20, lambda n: GrpcFailure(8, "too large"))
    wire = Wire()
    conn.connection_made(wire)  # type: ignore[arg-type]
    conn.data_received(http2.PREFACE + frame(http2.SETTINGS, 0, 0))
    conn.flush()
    wire.writes.clear()
    return conn, wire


def _answer(wire: Wire, stream_id: int) -> tuple[list[int], int]:
    """The frame kinds sent on `stream_id` and the revision its reply carries."""
    mine = [f for w in wire.writes for f in frames(w) if f[2] == stream_id]
    data = b"".join(p for kind, _, _, p in mine if kind == http2.DATA)
    reply = pb.PutResponse.FromString(data[5:])
    return [kind for kind, _, _, _ in mine], reply.header.revision


async def test_a_call_served_without_waiting_answers_inside_the_frame_and_needs_no_task() -> None:
    async def body(request: pb.PutRequest) -> pb.PutResponse:
        return pb.PutResponse(header=pb.ResponseHeader(revision=request.lease))

    conn, wire = _connection(_unary(body))
    conn.data_received(_request(1, 7))
    assert len(wire.writes) == 1  # answered before data_received returned, in one write
    kinds, revision = _answer(wire, 1)
    assert kinds == [http2.HEADERS, http2.DATA, http2.HEADERS]
    assert revision == 7
    assert not conn._streams


async def test_a_call_that_waits_resumes_in_a_task_and_answers() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def body(request: pb.PutRequest) -> pb.PutResponse:
        return pb.PutResponse(header=pb.ResponseHeader(revision=await gate))

    conn, wire = _connection(_unary(body))
    conn.data_received(_request(1, 0))
    stream = conn._streams[1]
    assert stream.task is not None
    assert not stream.task.done()
    gate.set_result(9)
    await asyncio.wait_for(stream.task, 5)
    assert _answer(wire, 1) == ([http2.HEADERS, http2.DATA, http2.HEADERS], 9)


async def test_a_reset_cancels_the_resumed_call() -> None:
    cancelled = asyncio.Event()

    async def body(request: pb.PutRequest) -> pb.PutResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("not reached")

    conn, wire = _connection(_unary(body))
    conn.data_received(_request(1, 0))
    task = conn._streams[1].task
    assert task is not None
    conn.data_received(frame(http2.RST_STREAM, 0, 1, struct.pack(">I", http2.CANCEL)))
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.gather(task, return_exceptions=True)
    assert task.done()
    assert not [f for w in wire.writes for f in frames(w) if f[2] == 1]  # nothing answered


async def test_a_request_split_across_reads_starts_the_call_once_it_is_whole() -> None:
    calls = 0

    async def body(request: pb.PutRequest) -> pb.PutResponse:
        nonlocal calls
        calls += 1
        return pb.PutResponse(header=pb.ResponseHeader(revision=request.lease))

    conn, wire = _connection(_unary(body))
    data = _request(1, 5) + _request(3, 6)
    for i in range(0, len(data), 7):  # frames cut anywhere, headers and messages included
        conn.data_received(data[i : i + 7])
    assert calls == 2
    assert _answer(wire, 1)[1] == 5
    assert _answer(wire, 3)[1] == 6


async def test_a_reply_larger_than_the_window_waits_for_window_updates() -> None:
    value = b"v" * 100_000  # above the client's default 65,535-byte windows

    async def body(request: pb.PutRequest) -> pb.PutResponse:
        return pb.PutResponse(header=pb.ResponseHeader(revision=1), prev_kv={"value": value})

    conn, wire = _connection(_unary(body))
    conn.data_received(_request(1, 0))
    task = conn._streams[1].task
    assert task is not None  # waiting for window: the slow path, in a task
    conn.flush()
    sent = sum(len(p) for w in wire.writes for k, _, _, p in frames(w) if k == http2.DATA)
    assert sent == http2.DEFAULT_WINDOW
    more = struct.pack(">I", 1 << 20)
    conn.data_received(frame(http2.WINDOW_UPDATE, 0, 0, more))
    conn.data_received(frame(http2.WINDOW_UPDATE, 0, 1, more))
    await asyncio.wait_for(task, 5)
    kinds, _ = _answer(wire, 1)
    assert kinds[0] == http2.HEADERS
    assert kinds[-1] == http2.HEADERS
    data = b"".join(p for w in wire.writes for k, _, s, p in frames(w) if k == http2.DATA)
    assert pb.PutResponse.FromString(data[5:]).prev_kv.value == value
