"""The peer port on plain asyncio (node.transport.peerport): streams without aiohttp,
everything else handed to aiohttp once it is there (until then it waits, unrefused).
Snapshot uploads, also read on plain asyncio: test_peerport_snapshots.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from node.raft.messages import Message, MessageType
from node.transport.peerport import PeerPort
from tests.transport.harness import Cluster, Member, eventually


def heartbeat(frm: int, to: int, commit: int) -> Message:
    return Message(MessageType.MsgHeartbeat, to=to, frm=frm, term=1, commit=commit)


async def listen_without_aiohttp(member: Member) -> tuple[PeerPort, asyncio.AbstractServer]:
    """The member's peer port before its HTTP side is imported (serve.py's first steps)."""
    port = PeerPort(member.transport)
    server = await asyncio.get_running_loop().create_server(
        port.protocol, "127.0.0.1", member.port, reuse_address=True
    )
    return port, server


async def one_member_without_aiohttp(
    make_cluster: Callable[..., Cluster], servers: list[asyncio.AbstractServer]
) -> tuple[Cluster, Member, PeerPort]:
    """A one-member cluster whose member listens on its peer port, aiohttp not yet there."""
    cluster = make_cluster(1)
    member = cluster.build(1)
    port, server = await listen_without_aiohttp(member)
    servers.append(server)
    return cluster, member, port


async def ask(member: Member, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", member.port)
    writer.write(request)
    await writer.drain()
    return reader, writer


async def test_streams_connect_and_carry_messages_before_aiohttp_serves(
    make_cluster: Callable[..., Cluster], servers: list[asyncio.AbstractServer]
) -> None:
    cluster = make_cluster(2)
    for member_id in (1, 2):
        member = cluster.build(member_id)
        _, server = await listen_without_aiohttp(member)
        servers.append(server)
        await member.transport.start()
        cluster.members[member_id] = member
    await cluster.wait_connected()
    a, b = cluster.members[1], cluster.members[2]
    a.transport.send([heartbeat(1, 2, i) for i in range(5)])
    b.transport.send([heartbeat(2, 1, 7)])
    await b.rec.wait(lambda: len(b.rec.messages) == 5, "a's heartbeats at b")
    await a.rec.wait(lambda: len(a.rec.messages) == 1, "b's heartbeat at a")
    assert [m.commit for m in b.rec.messages] == list(range(5))


async def test_a_request_before_aiohttp_waits_and_is_answered_once_it_serves(
    make_cluster: Callable[..., Cluster], servers: list[asyncio.AbstractServer]
) -> None:
    cluster, member, port = await one_member_without_aiohttp(make_cluster, servers)
    await member.transport.start()
    cluster.members[1] = member
    reader, writer = await ask(member, b"GET /raft/probing HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        with pytest.raises(TimeoutError):  # held, not refused: nothing comes back yet
            await asyncio.wait_for(reader.read(1), 0.3)
        app = web.Application()
        member.transport.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        member.runner = runner
        assert runner.server is not None
        port.serve_http(runner.server)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_a_member_stopping_before_aiohttp_closes_the_waiting_requests(
    make_cluster: Callable[..., Cluster], servers: list[asyncio.AbstractServer]
) -> None:
    _, member, port = await one_member_without_aiohttp(make_cluster, servers)
    reader, writer = await ask(member, b"GET /raftmon/member HTTP/1.1\r\nHost: x\r\n\r\n")
    await eventually(lambda: bool(port._waiting), "the request waits for aiohttp")
    port.close()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /raft/stream HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /raft/stream HTTP/1.1\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n", b"431"),
        (b"GET /raft/stream HTTP/1.1\r\nHost: x\r\n\r\n", b"412"),  # no protocol header
        (b"GET /raft/streams HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),  # aiohttp's
    ],
)
async def test_bad_stream_requests_are_answered_and_closed(
    connected_cluster: Callable[..., Awaitable[Cluster]], request_bytes: bytes, status: bytes
) -> None:
    cluster = await connected_cluster(1)
    reader, writer = await ask(cluster.members[1], request_bytes)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.split(b" ")[1] == status
    finally:
        writer.close()


async def test_streams_served_by_aiohttp_alone_still_carry_messages(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2, inbound="aiohttp")
    a, b = cluster.members[1], cluster.members[2]
    a.transport.send([heartbeat(1, 2, i) for i in range(3)])
    await b.rec.wait(lambda: len(b.rec.messages) == 3, "a's heartbeats at b")
