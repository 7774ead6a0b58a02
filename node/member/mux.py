"""One client port for gRPC and HTTP/1, sorted by each connection's first bytes.

etcd serves gRPC and its JSON gateway (and /metrics, /health) on the same client URL;
its cmux looks at what a connection sends first. gRPC clients speak HTTP/2 with prior
knowledge, so their first 24 bytes are HTTP/2's connection preface; anything else is
HTTP/1 for aiohttp. `FirstBytesRouter` waits for just enough bytes to tell (at most
the preface's length), then gives the transport to the chosen protocol and replays
what it read. The cost is one extra protocol object per connection and one buffer
comparison; requests on a connection never pass through it again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp.web_runner import BaseRunner

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FirstBytesRouter(asyncio.Protocol):
    """Hands a new connection to HTTP/2 (gRPC) or HTTP/1 by the bytes it starts with."""

    def __init__(
        self,
        http1: Callable[[], asyncio.BaseProtocol],
        http2: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._http1 = http1
        self._http2 = http2
        self._transport: asyncio.BaseTransport | None = None
        self._seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        seen = self._seen + data
        n = min(len(seen), len(HTTP2_PREFACE))
        if seen[:n] != HTTP2_PREFACE[:n]:
            self._hand_over(self._http1, seen)
        elif n == len(HTTP2_PREFACE):
            self._hand_over(self._http2, seen)
        else:
            self._seen = seen  # a prefix of the preface so far: wait for more

    def _hand_over(self, factory: Callable[[], asyncio.BaseProtocol], seen: bytes) -> None:
        transport = self._transport
        assert transport is not None
        protocol = factory()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        cast("asyncio.Protocol", protocol).data_received(seen)
        self._transport = None

    def eof_received(self) -> bool | None:
        return None  # closed before it said anything we could route: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def router_factory(
    runner: BaseRunner, http2: Callable[[], asyncio.BaseProtocol]
) -> Callable[[], FirstBytesRouter]:
    """Connections to aiohttp's server of `runner`, or to `http2` when they speak HTTP/2."""
    server = runner.server
    assert server is not None
    return lambda: FirstBytesRouter(server, http2)


class MuxSite(web.TCPSite):
    """aiohttp's TCP site, with each accepted connection going through a router first."""

    def __init__(
        self,
        runner: BaseRunner,
        host: str,
        port: int,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self._factory = protocol_factory

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
