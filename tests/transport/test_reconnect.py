"""A peer that goes away and comes back: drops are counted, the core is told, streams resume."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from node.raft.messages import Entry, Message, MessageType
from node.transport import TransportOptions, wire
from node.transport.wire import PROBING_PATH, STREAM_PATH
from tests.transport.harness import Cluster, eventually


def app(frm: int, to: int, index: int) -> Message:
    return Message(
        MessageType.MsgApp, to=to, frm=frm, term=1, index=index, entries=[Entry(1, index + 1)]
    )


async def test_peer_down_then_up_reports_unreachable_and_messages_flow_again(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2)
    a, b = cluster.members[1], cluster.members[2]
    a.transport.send([app(1, 2, 0)])
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "first append")

    await b.stop()
    del cluster.members[2]
    await eventually(lambda: not a.transport.stats()[2].active, "a notices b is gone")
    await a.rec.wait(lambda: 2 in a.rec.unreachable, "the broken stream alone is reported")

    a.transport.send([app(1, 2, 1)])  # no stream: dropped at once, counted, reported
    await a.rec.wait(lambda: a.rec.unreachable.count(2) >= 2, "unreachable after a dropped MsgApp")
    stats = a.transport.stats()[2]
    assert stats.send_failures >= 1
    assert stats.disconnects == 1

    b2 = await cluster.start(2)  # same id, same port: a redials with backoff
    await eventually(lambda: a.transport.stats()[2].active, "a reconnected to b")
    a.transport.send([app(1, 2, 7)])
    await b2.rec.wait(lambda: [m.index for m in b2.rec.messages] == [7], "append after restart")


async def test_queue_overflow_drops_counts_and_reports_unreachable(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2, options=TransportOptions(queue_size=4, backoff_max=0.2))
    a, b = cluster.members[1], cluster.members[2]
    a.transport.set_fault(2, delay_seconds=0.5)  # holds the queue so it can fill up
    a.transport.send([app(1, 2, i) for i in range(10)])
    stats = a.transport.stats()[2]
    assert stats.dropped_overflow == 6
    assert stats.send_failures == 6
    await a.rec.wait(lambda: a.rec.unreachable == [2], "one coalesced unreachable report")
    await b.rec.wait(lambda: len(b.rec.messages) == 4, "the four queued appends")
    assert [m.index for m in b.rec.messages] == [0, 1, 2, 3]


async def test_messages_to_a_peer_that_never_started_are_dropped_and_counted(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    a = await cluster.start(1)
    await eventually(lambda: a.transport.stats()[2].probe_failures >= 1, "a failed probe")
    await eventually(
        lambda: a.transport._senders[2].state.value == "disconnected", "a in dial backoff"
    )
    a.transport.send([Message(MessageType.MsgHeartbeat, to=2, frm=1)])
    assert a.transport.stats()[2].dropped_disconnected >= 1
    assert not a.transport.stats()[2].active


@contextlib.asynccontextmanager
async def wedged_peer(port: int, *, answer_probes: bool) -> AsyncIterator[None]:
    """A fake peer on `port` that accepts our stream (101) and then never reads it.

    aiohttp stops reading the upgraded connection after 64 KiB it cannot hand over, so the
    kernel buffers fill, as with a paused (SIGSTOP) process. Probes hang unless answered.
    """
    release = asyncio.Event()

    async def accept_then_hang(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=101, headers=wire.upgrade_headers({}))
        await resp.prepare(request)
        await resp.write_eof()
        await release.wait()
        return resp

    async def probe(request: web.Request) -> web.Response:
        if not answer_probes:
            await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get(STREAM_PATH, accept_then_hang)
    app.router.add_get(PROBING_PATH, probe)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield
    finally:
        release.set()
        await runner.cleanup()


async def test_stream_to_a_peer_that_stops_answering_probes_is_reset(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A wedged peer (SIGSTOP) keeps its socket open; only the prober can tell."""
    options = TransportOptions(probe_interval=0.05, probe_timeout=0.1, backoff_max=0.2)
    cluster = make_cluster(2, options=options)
    async with wedged_peer(cluster.ports[2], answer_probes=False):
        a = await cluster.start(1)
        await eventually(lambda: a.transport.stats()[2].active, "stream accepted by the fake peer")
        await eventually(lambda: a.transport.stats()[2].disconnects >= 1, "stuck stream reset")
        await a.rec.wait(lambda: 2 in a.rec.unreachable, "unreachable after the reset")
        assert a.transport.stats()[2].probe_failures >= 2


async def test_a_peer_that_stops_reading_fills_the_socket_then_messages_are_dropped(
    make_cluster: Callable[..., Cluster],
) -> None:
    """The socket's buffer is bounded too: past the limit, appends are dropped and reported."""
    options = TransportOptions(write_buffer_limit=1 << 20, probe_interval=60.0, backoff_max=0.2)
    cluster = make_cluster(2, options=options)
    async with wedged_peer(cluster.ports[2], answer_probes=True):
        a = await cluster.start(1)
        await eventually(lambda: a.transport.stats()[2].active, "stream accepted by the fake peer")
        big = [
            Message(
                MessageType.MsgApp,
                to=2,
                frm=1,
                term=1,
                index=i,
                entries=[Entry(1, i + 1, data=b"x" * (1 << 20))],
            )
            for i in range(64)
        ]
        for m in big:  # 64 MiB into a socket nobody reads
            a.transport.send([m])
        stats = a.transport.stats()[2]
        assert stats.dropped_overflow > 0
        assert stats.messages_sent + stats.dropped_overflow == 64
        assert stats.send_failures == stats.dropped_overflow
        sock = a.transport._senders[2]._socket
        assert sock is not None
        assert sock.get_write_buffer_size() <= 2 * (1 << 20) + 4096
        await a.rec.wait(lambda: 2 in a.rec.unreachable, "the dropped appends are reported")
