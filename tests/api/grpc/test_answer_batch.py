"""Answers woken together leave together: node.api.grpc.http2.AnswerBatch.

When an apply batch resolves many proposals at once, the calls those handlers finish
are written one write per connection instead of one per call, still in the same loop
turn; each answer stays on its own stream, in the order the calls finished. A call
finished outside such a wake-up leaves at once, as a single client's does.
"""

from __future__ import annotations

import asyncio

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from node.api.grpc import http2
from node.api.grpc.http2 import AnswerBatch, GrpcConnection, GrpcFailure, GrpcStream, Method
from tests.api.grpc.frames import PATH, PATH_BLOCK, Wire, frame, frames


async def _connection(
    batch: AnswerBatch | None, calls: int
) -> tuple[Wire, dict[int, asyncio.Future[int]]]:
    """A connection with `calls` Put calls whose handlers wait for their revision."""
    loop = asyncio.get_running_loop()
    gates: dict[int, asyncio.Future[int]] = {}

    async def handler(stream: GrpcStream) -> None:
        gate: asyncio.Future[int] = loop.create_future()
        gates[stream.id] = gate
        revision = await gate
        await stream.send_message(pb.PutResponse(header=pb.ResponseHeader(revision=revision)))
        stream.finish()

    def too_large(n: int) -> Exception:
        return GrpcFailure(8, "too large")

    conn = GrpcConnection({PATH: Method(pb.PutRequest, handler)}, 1 << 20, too_large, batch=batch)
    wire = Wire()
    conn.connection_made(wire)  # type: ignore[arg-type]
    requests = [
        frame(http2.HEADERS, http2.END_HEADERS | http2.END_STREAM, 2 * i + 1, PATH_BLOCK)
        for i in range(calls)
    ]
    conn.data_received(http2.PREFACE + frame(http2.SETTINGS, 0, 0) + b"".join(requests))
    for _ in range(100):  # the handlers start (bounded)
        if len(gates) == calls:
            break
        await asyncio.sleep(0)
    assert len(gates) == calls
    await asyncio.sleep(0)  # the connection's own frames (SETTINGS, ...) leave first
    wire.writes.clear()
    return wire, gates


async def _after_queued_callbacks() -> None:
    """Returns once every callback queued before this call has run."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


async def test_answers_of_one_wakeup_leave_in_one_write_each_on_its_stream_in_order() -> None:
    batch = AnswerBatch()
    wire, gates = await _connection(batch, 4)
    order = [5, 1, 7, 3]  # the order the server resolves them: the order they finish
    for sid in order:
        gates[sid].set_result(1000 + sid)
    batch.open()  # as Proposals.resolve does, right after the futures
    writes_when_turn_ended: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: writes_when_turn_ended.append(len(wire.writes)))
    await _after_queued_callbacks()
    await _after_queued_callbacks()
    # one write, and it was made before anything queued after the wake-up ran
    assert writes_when_turn_ended == [1]
    assert len(wire.writes) == 1
    written = frames(wire.writes[0])
    data = [(sid, payload) for kind, _, sid, payload in written if kind == http2.DATA]
    assert [sid for sid, _ in data] == order
    for sid, payload in data:
        assert pb.PutResponse.FromString(payload[5:]).header.revision == 1000 + sid
    ends = [sid for kind, flags, sid, _ in written if kind == http2.HEADERS and flags & 0x1]
    assert ends == order  # each call's trailers, after its own reply
    assert not batch.opened


async def test_a_call_finished_outside_a_wakeup_leaves_at_once() -> None:
    batch = AnswerBatch()
    wire, gates = await _connection(batch, 2)
    gates[1].set_result(7)
    gates[3].set_result(9)
    await _after_queued_callbacks()
    assert len(wire.writes) == 2  # no batch was opened: one write per finished call
    revisions = [
        pb.PutResponse.FromString(p[5:]).header.revision
        for w in wire.writes
        for kind, _, _, p in frames(w)
        if kind == http2.DATA
    ]
    assert revisions == [7, 9]


async def test_a_call_finished_after_the_wakeup_ended_is_not_held() -> None:
    batch = AnswerBatch()
    wire, gates = await _connection(batch, 2)
    gates[1].set_result(1)
    batch.open()
    await _after_queued_callbacks()
    assert len(wire.writes) == 1
    gates[3].set_result(2)  # a later wake-up that opened no batch
    await _after_queued_callbacks()
    assert len(wire.writes) == 2
    assert not batch.opened


def test_a_wakeup_off_the_loop_holds_nothing() -> None:
    batch = AnswerBatch()
    batch.open()  # no running loop here: nothing could close it, so it never opens
    assert not batch.opened
