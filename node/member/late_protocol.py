"""A protocol factory set after its listener opens, for the gRPC side of the client port.

The client port serves HTTP/1 (aiohttp) and gRPC (HTTP/2) behind one router
(node.member.mux). A restarted member opens it as soon as its HTTP side is imported and
imports the gRPC side after (~20 ms of CPU, node.member.serve says why): a gRPC
connection made in between waits here, what it sent kept, until its protocol exists.
Plain asyncio: imported at the member's start, before aiohttp.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Callable

# Bytes a connection may send before its protocol is known; then it stops being read.
WAITING_BUFFER_BYTES = 64 * 1024


class LateProtocol:
    """A protocol factory known only after the listener opens: connections made before
    wait, what they send kept, and are handed to the factory when it is `set`."""

    def __init__(self) -> None:
        self._factory: Callable[[], asyncio.BaseProtocol] | None = None
        self._waiting: set[_Waiting] = set()

    def __call__(self) -> asyncio.BaseProtocol:
        if self._factory is not None:
            return self._factory()
        waiting = _Waiting(self._waiting)
        self._waiting.add(waiting)
        return waiting

    def set(self, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self._factory = factory
        waiting, self._waiting = self._waiting, set()
        for connection in waiting:
            connection.hand_over(factory)

    def close(self) -> None:
        """Close the connections still waiting (the member stops before its gRPC side)."""
        waiting, self._waiting = self._waiting, set()
        for connection in waiting:
            connection.close()


class _Waiting(asyncio.Protocol):
    """One connection waiting for its protocol: what it sent so far, up to a bound."""

    def __init__(self, registry: set[_Waiting]) -> None:
        self._registry = registry
        self._transport: asyncio.BaseTransport | None = None
        self._seen = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._seen += data
        if len(self._seen) >= WAITING_BUFFER_BYTES and self._transport is not None:
            cast("asyncio.ReadTransport", self._transport).pause_reading()

    def eof_received(self) -> bool | None:
        return None  # gone before it could be served: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._registry.discard(self)

    def hand_over(self, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        protocol = factory()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._seen:
            cast("asyncio.Protocol", protocol).data_received(bytes(self._seen))
        if len(self._seen) >= WAITING_BUFFER_BYTES:
            cast("asyncio.ReadTransport", transport).resume_reading()
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
