"""Peer transport benchmark (`make bench`): codec speed, and messages/s and MB/s over loopback.

Two real transports with real aiohttp listeners on 127.0.0.1 in ONE process and ONE event
loop, so every figure is sender + receiver work on a single core (a real cluster spreads
them over processes). Run once with asyncio's default loop and once with uvloop when it
is installed. Numbers are noisy on a shared 2-core machine; they are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiohttp import web

from node.raft.messages import Entry, Message, MessageType
from node.transport import Transport
from node.transport.codec import FrameDecoder, decode, encode, encode_batch
from tests.helpers import free_port

pytestmark = pytest.mark.bench

SMALL_N = 200_000
APP_N = 5_000
PINGS = 2_000


def heartbeat(i: int) -> Message:
    return Message(MessageType.MsgHeartbeat, to=2, frm=1, term=3, commit=i)


def append(i: int) -> Message:
    entries = [Entry(3, i * 64 + k, data=b"v" * 300) for k in range(64)]
    return Message(
        MessageType.MsgApp, to=2, frm=1, term=3, log_term=3, index=i * 64, entries=entries
    )


def test_codec_speed() -> None:
    hb = heartbeat(1)
    t0 = time.perf_counter()
    for _ in range(SMALL_N):
        decode(encode(hb))
    small = SMALL_N / (time.perf_counter() - t0)
    app = append(1)
    t0 = time.perf_counter()
    for _ in range(APP_N):
        decode(encode(app))
    app_dt = (time.perf_counter() - t0) / APP_N
    stream = encode_batch([hb] * 1000)
    t0 = time.perf_counter()
    for _ in range(100):
        assert len(FrameDecoder().feed(stream)) == 1000
    stream_rate = 100_000 / (time.perf_counter() - t0)
    print(
        f"\ncodec, one core: heartbeat encode+decode {small:,.0f} msg/s; "
        f"MsgApp 64x300 B encode+decode {app_dt * 1e6:.0f} us ({19_200 / app_dt / 1e6:.0f} MB/s "
        f"payload); stream decode of heartbeats {stream_rate:,.0f} msg/s"
    )


class _Pair:
    """Member 1 sends to member 2; member 2 may answer through `reply`."""

    def __init__(self) -> None:
        self.ports = {1: free_port(), 2: free_port()}
        self.received = 0
        self.payload_bytes = 0
        self.done = asyncio.Event()
        self.target = 0
        self.reply: Callable[[Message], None] | None = None
        self.runners: list[web.AppRunner] = []
        self.transports: dict[int, Transport] = {}

    def on_message(self, msg: Message) -> None:
        if self.reply is not None:
            self.reply(msg)
            return
        self.received += 1
        for e in msg.entries:
            self.payload_bytes += len(e.data)
        if self.received >= self.target:
            self.done.set()

    async def start(self, snapshot_dir: str) -> None:
        urls = {i: f"http://127.0.0.1:{p}" for i, p in self.ports.items()}
        for i in (1, 2):
            t = Transport(i, 1, urls, self.on_message, None, None, None, snapshot_dir, 0.1)
            app = web.Application()
            t.add_routes(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.ports[i]).start()
            self.runners.append(runner)
            self.transports[i] = t
            await t.start()
        async with asyncio.timeout(10):
            while not all(t.stats()[3 - i].active for i, t in self.transports.items()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        for t in self.transports.values():
            await t.stop()


async def _throughput(make: Callable[[int], Message], n: int, batch: int) -> tuple[float, float]:
    pair = _Pair()
    with tempfile.TemporaryDirectory() as snaps:
        await pair.start(snaps)
        try:
            pair.target = n
            sender = pair.transports[1]
            msgs = [make(i) for i in range(n)]
            t0 = time.perf_counter()
            for at in range(0, n, batch):
                sender.send(msgs[at : at + batch])
                await asyncio.sleep(0)  # one Ready per loop turn, as the driver does
            async with asyncio.timeout(120):
                await pair.done.wait()
            dt = time.perf_counter() - t0
            assert sender.stats()[2].send_failures == 0
            return n / dt, pair.payload_bytes / dt / 1e6
        finally:
            await pair.stop()


async def _ping_pong(pings: int) -> list[float]:
    """Round trips of one heartbeat there and one response back, one at a time."""
    pair = _Pair()
    with tempfile.TemporaryDirectory() as snaps:
        await pair.start(snaps)
        try:
            back = asyncio.Event()
            t2 = pair.transports[2]

            def reply(msg: Message) -> None:
                if msg.to == 2:
                    t2.send([Message(MessageType.MsgHeartbeatResp, to=1, frm=2, term=3)])
                else:
                    back.set()

            pair.reply = reply
            samples = []
            for i in range(pings):
                back.clear()
                t0 = time.perf_counter()
                pair.transports[1].send([heartbeat(i)])
                async with asyncio.timeout(5):
                    await back.wait()
                samples.append(time.perf_counter() - t0)
            return samples
        finally:
            await pair.stop()


def _run(
    factory: Callable[[], asyncio.AbstractEventLoop] | None, coro: Coroutine[Any, Any, Any]
) -> Any:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]]:
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]] = [("asyncio", None)]
    try:
        import uvloop
    except ImportError:
        return loops
    loops.append(("uvloop", uvloop.new_event_loop))
    return loops


@pytest.mark.parametrize(("name", "factory"), _loops(), ids=[n for n, _ in _loops()])
def test_transport_loopback_throughput(
    name: str, factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    small_rate, _ = _run(factory, _throughput(heartbeat, SMALL_N, 64))
    app_rate, app_mbs = _run(factory, _throughput(append, APP_N, 4))
    rtts = _run(factory, _ping_pong(PINGS))
    q = statistics.quantiles(rtts, n=100)
    print(
        f"\ntransport over loopback, {name}, one process: heartbeats {small_rate:,.0f} msg/s "
        f"(send batches of 64); MsgApp 64x300 B {app_rate:,.0f} msg/s = {app_mbs:.1f} MB/s "
        f"of entry data; ping-pong round trip p50 {q[49] * 1e3:.3f} ms, "
        f"p99 {q[98] * 1e3:.3f} ms ({PINGS} samples)"
    )
