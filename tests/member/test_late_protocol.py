"""Connections made before the gRPC side exists wait for it (node.member.late_protocol).

Over a real loopback listener: what a client sent while it waited reaches the protocol
set later, in order, followed by what it sends after; connections made after the set go
straight to it; connections still waiting when the member stops are closed.
"""

from __future__ import annotations

import asyncio

from node.member.late_protocol import LateProtocol


class Echo(asyncio.Protocol):
    """Answers every chunk with "<" + chunk: shows what reached it, in order."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(b"<" + data)


async def _listener(factory: LateProtocol) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _waiting_client(port: int, sent: bytes) -> Client:
    """A connection that sent `sent` while no protocol exists yet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    await asyncio.sleep(0.05)  # the bytes arrive while no protocol exists
    return reader, writer


async def test_what_a_waiting_connection_sent_reaches_the_protocol_set_later() -> None:
    late = LateProtocol()
    server, port = await _listener(late)
    try:
        async with asyncio.timeout(10):
            reader, writer = await _waiting_client(port, b"early")
            late.set(Echo)
            assert await reader.readexactly(6) == b"<early"
            writer.write(b"later")
            assert await reader.readexactly(6) == b"<later"
            fresh_reader, fresh_writer = await asyncio.open_connection("127.0.0.1", port)
            fresh_writer.write(b"direct")
            assert await fresh_reader.readexactly(7) == b"<direct"
            writer.close()
            fresh_writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_connections_still_waiting_are_closed_when_the_member_stops() -> None:
    late = LateProtocol()
    server, port = await _listener(late)
    try:
        async with asyncio.timeout(10):
            reader, writer = await _waiting_client(port, b"x")
            late.close()
            assert await reader.read() == b""  # closed by the member, nothing answered
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
