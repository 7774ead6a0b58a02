"""The receiving end of an upgraded stream: good frames delivered, bad streams cut and counted.

A raw client plays the sending member: it asks for the upgrade with the right headers and
then writes bytes straight to the socket, as `PeerSender` does.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from node.raft.messages import Message, MessageType
from node.transport import TransportOptions, wire
from node.transport.codec import encode
from tests.transport.harness import FAST, Cluster, Member, eventually


def heartbeat(commit: int) -> Message:
    return Message(MessageType.MsgHeartbeat, to=2, frm=1, term=1, commit=commit)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def open_stream(
    session: aiohttp.ClientSession, b: Member, cluster: Cluster
) -> aiohttp.ClientResponse:
    """Member 1's stream to `b`, upgraded; the caller writes to resp.connection.transport."""
    headers = wire.upgrade_headers(wire.stream_headers(1, 2, cluster.cluster_id))
    resp = await session.get(b.url + wire.STREAM_PATH, headers=headers)
    assert resp.status == 101
    assert resp.headers[wire.HDR_FROM] == "2"
    return resp


def ended(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "node.transport.receiver" and "peer stream ended" in r.getMessage()
    ]


async def test_frames_in_any_split_are_delivered_in_order(
    make_cluster: Callable[..., Cluster], session: aiohttp.ClientSession
) -> None:
    cluster = make_cluster(2)
    b = await cluster.start(2)
    resp = await open_stream(session, b, cluster)
    data = b"".join(encode(heartbeat(i)) for i in range(50))
    sock = resp.connection.transport if resp.connection else None
    assert sock is not None
    for at in range(0, len(data), 7):  # frames cut at every odd place
        sock.write(data[at : at + 7])
    await b.rec.wait(lambda: len(b.rec.messages) == 50, "all 50 heartbeats")
    assert [m.commit for m in b.rec.messages] == list(range(50))
    assert b.transport.stats()[1].received_bytes == len(data)
    resp.close()


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"\xff\xff\xff\xff", "corrupt frame"),  # a length far over the frame limit
        (struct.pack("<I", 16) + b"abc", "stream ended inside a frame"),  # then a hang-up
    ],
)
async def test_a_corrupt_or_truncated_stream_is_cut_and_counted(
    make_cluster: Callable[..., Cluster],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    tail: bytes,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    cluster = make_cluster(2)
    b = await cluster.start(2)
    resp = await open_stream(session, b, cluster)
    sock = resp.connection.transport if resp.connection else None
    assert sock is not None
    sock.write(encode(heartbeat(7)))
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "the whole frame first")
    sock.write(tail)
    if reason != "corrupt frame":
        sent = len(encode(heartbeat(7))) + len(tail)
        await eventually(lambda: b.transport.stats()[1].received_bytes == sent, "the partial frame")
        sock.close()
    await eventually(lambda: b.transport.stats()[1].receive_failures == 1, "a receive failure")
    assert [m.commit for m in b.rec.messages] == [7]  # nothing from the bad bytes
    assert any(reason in line for line in ended(caplog)), ended(caplog)
    await eventually(lambda: b.transport._receiver._inbound.get(1) is None, "stream closed")
    resp.close()


async def test_a_silent_stream_is_closed_after_the_idle_timeout(
    make_cluster: Callable[..., Cluster],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    options = TransportOptions(
        backoff_initial=FAST.backoff_initial,
        backoff_max=FAST.backoff_max,
        probe_interval=FAST.probe_interval,
        idle_timeout=0.3,
    )
    cluster = make_cluster(2, options=options)
    b = await cluster.start(2)
    resp = await open_stream(session, b, cluster)
    await eventually(lambda: b.transport.stats()[1].receive_failures == 1, "idle stream cut")
    assert any("no data for 0.3s" in line for line in ended(caplog)), ended(caplog)
    protocol = resp.connection.protocol if resp.connection else None
    await eventually(lambda: protocol is None or not protocol.is_connected(), "connection closed")
    resp.close()
