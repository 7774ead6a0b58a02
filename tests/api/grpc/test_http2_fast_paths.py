"""node.api.grpc.http2's shortcuts for a single client's latency keep the calls' meaning.

- A repeated all-indexed header block is decoded once, but only while the HPACK dynamic
  table it indexes is unchanged: after a block that changes the table, the same bytes
  name what the table now holds (raw frames, so the test picks every byte).
- A handler that ends its call with `finish()` has its answer on the wire at once, while
  it goes on (a unary call records its metrics after); the call ends once, with one status.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import grpc
import pytest
from hpack import Decoder

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from node.api.grpc import http2
from node.api.grpc.http2 import GrpcConnection, GrpcFailure, GrpcStream, Method

AFTER_FINISH = asyncio.Event()
LET_GO = asyncio.Event()


def answer_with(name: str) -> Method:
    async def refuse(stream: GrpcStream) -> None:
        raise GrpcFailure(3, name)  # the status message says which method answered

    return Method(pb.RangeRequest, refuse)


async def finish_early(stream: GrpcStream) -> None:
    req = await stream.recv_message()
    await stream.send_message(pb.PutResponse(header=pb.ResponseHeader(revision=req.lease)))
    stream.finish()
    AFTER_FINISH.set()
    await LET_GO.wait()  # the handler goes on (as a unary call's metrics do)


METHODS = {
    b"/t.S/A": answer_with("A"),
    b"/t.S/B": answer_with("B"),
    b"/etcdserverpb.KV/Put": Method(pb.PutRequest, finish_early),
}


@pytest.fixture
async def server() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: GrpcConnection(METHODS, 1 << 20, lambda n: GrpcFailure(8, "too large")),
        "127.0.0.1",
        0,
    )
    try:
        yield f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return struct.pack(">HBBBI", n >> 8, n & 0xFF, kind, flags, stream_id) + payload


def _literal_indexed(name: bytes, value: bytes) -> bytes:
    """RFC 7541 6.2.1: a literal with incremental indexing, new name (it enters the table)."""
    assert len(name) < 127
    assert len(value) < 127
    return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _statuses(server: str, blocks: list[bytes]) -> list[str]:
    """One call per header block on one connection, in order; each call's grpc-message."""
    host, port = server.split(":")
    answers: list[str] = []
    decoder = Decoder()  # our answers never use the dynamic table, but decode as a client
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(http2.PREFACE + _frame(http2.SETTINGS, 0, 0))
        data = b""
        for i, block in enumerate(blocks):
            stream_id = 2 * i + 1
            flags = http2.END_HEADERS | http2.END_STREAM
            sock.sendall(_frame(http2.HEADERS, flags, stream_id, block))
            for _ in range(100):  # until this call's trailers arrived (bounded)
                found = None
                while len(data) >= 9:
                    hi, lo, kind, _, sid = struct.unpack(">HBBBI", data[:9])
                    n = (hi << 8) | lo
                    if len(data) < 9 + n:
                        break
                    payload, data = data[9 : 9 + n], data[9 + n :]
                    if kind == http2.HEADERS and sid == stream_id:
                        headers = dict(decoder.decode(payload, raw=True))
                        found = headers[b"grpc-message"].decode()
                if found is not None:
                    answers.append(found)
                    break
                chunk = sock.recv(65536)
                assert chunk, "connection closed"
                data += chunk
            else:
                raise AssertionError(f"no answer to call {i}")
    return answers


async def test_an_indexed_block_names_what_the_table_holds_when_it_is_sent(server: str) -> None:
    blocks = [
        _literal_indexed(b":path", b"/t.S/A"),  # dynamic index 62 = /t.S/A
        b"\xbe",  # index 62: A (decoded, then remembered)
        b"\xbe",  # the same bytes again: A
        _literal_indexed(b":path", b"/t.S/B"),  # B enters at 62, A moves to 63
        b"\xbe",  # the same bytes as before, now B
        b"\xbf",  # A at 63
        b"\xbe",  # B again
    ]
    answers = await asyncio.to_thread(_statuses, server, blocks)
    assert answers == ["A", "A", "A", "B", "B", "A", "B"]


async def test_a_finished_call_is_answered_while_its_handler_goes_on(server: str) -> None:
    AFTER_FINISH.clear()
    LET_GO.clear()
    async with grpc.aio.insecure_channel(server) as ch:
        path, decode = "/etcdserverpb.KV/Put", pb.PutResponse.FromString
        put = ch.unary_unary(path, response_deserializer=decode)
        call = put(pb.PutRequest(key=b"k", lease=42).SerializeToString(), timeout=10)
        reply = await call
        assert AFTER_FINISH.is_set()
        assert not LET_GO.is_set()  # answered while the handler still runs
        assert reply.header.revision == 42
        assert await call.code() == grpc.StatusCode.OK
        LET_GO.set()
        # the connection still serves calls: the handler's end wrote nothing more
        call = put(pb.PutRequest(key=b"k", lease=7).SerializeToString(), timeout=10)
        assert (await call).header.revision == 7
