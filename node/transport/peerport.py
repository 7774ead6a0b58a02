"""The peer port on plain asyncio: Raft streams here, every other request to aiohttp.

A member opens its peer port, starts its Raft node and connects its peers before it
imports aiohttp (httphead.py says why). `PeerPort` reads each new connection's request
line: a stream request (and an upgraded RTT probe) is read and answered here and the
connection becomes a frame stream; anything else (snapshot uploads, member info,
/members, plain probes) is handed to aiohttp's server with the bytes read so far, once
`serve_http` has given it one. Until then such a connection waits, paused; it is not
refused. The first line decides, so a connection never passes through here again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol, cast

from node.transport import httphead, wire

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# Request lines this port reads itself; every other connection is aiohttp's.
_OURS = (
    f"GET {wire.STREAM_PATH} ".encode(),
    f"GET {wire.PROBING_PATH} ".encode(),
)
_LONGEST = max(len(p) for p in _OURS)
HEAD_TIMEOUT = 10.0  # seconds for a stream request's head (a slow sender is dropped)


class RawPeer(Protocol):
    """What the peer port needs of the transport (node.transport.Transport has both)."""

    def open_raw_stream(
        self, headers: Mapping[str, str], transport: asyncio.Transport
    ) -> asyncio.Protocol | None: ...

    def answer_raw_probe(
        self, headers: Mapping[str, str], transport: asyncio.Transport
    ) -> bool: ...


class PeerPort:
    """Shared by every connection of one member's peer listener(s)."""

    def __init__(self, peer: RawPeer) -> None:
        self._peer = peer
        self._http: Callable[[], asyncio.BaseProtocol] | None = None
        self._waiting: set[_Router] = set()  # connections waiting for aiohttp
        self._closed = False

    def protocol(self) -> asyncio.Protocol:
        """The protocol factory for `loop.create_server` (or a TLS accept loop)."""
        return _Router(self)

    def serve_http(self, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        """aiohttp is up: its server protocol takes every other connection, waiting ones
        first."""
        self._http = factory
        waiting, self._waiting = self._waiting, set()
        for router in waiting:
            router.hand_over_http()

    @property
    def http_ready(self) -> bool:
        return self._http is not None

    def close(self) -> None:
        """Close connections still waiting for aiohttp (the member stops before it is up)."""
        self._closed = True
        waiting, self._waiting = self._waiting, set()
        for router in waiting:
            router.abandon()


class _Router(asyncio.Protocol):
    """One new connection until its first line says whose it is."""

    def __init__(self, port: PeerPort) -> None:
        self._port = port
        self._transport: asyncio.Transport | None = None
        self._seen = b""
        self._ours = False  # a stream or probe request: reading its head here
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._timed_out)

    def data_received(self, data: bytes) -> None:
        seen = self._seen + data
        self._seen = seen
        if not self._ours:
            if any(seen.startswith(p) for p in _OURS):
                self._ours = True
            elif len(seen) >= _LONGEST or not any(p.startswith(seen) for p in _OURS):
                self._to_http()
                return
            else:
                return  # a prefix of one of ours so far: wait for more
        end = seen.find(httphead.HEAD_END)
        if end > httphead.MAX_HEAD_BYTES or (end < 0 and len(seen) > httphead.MAX_HEAD_BYTES):
            self._answer(431, "request head too large")
            return
        if end < 0:
            return
        try:
            head = httphead.parse_request(seen[:end])
        except httphead.HeadError as exc:
            self._answer(400, str(exc))
            return
        self._dispatch(head, seen[end + len(httphead.HEAD_END) :])

    def _dispatch(self, head: httphead.RequestHead, rest: bytes) -> None:
        transport = self._transport
        assert transport is not None
        peer = self._port._peer
        if head.path == wire.PROBING_PATH:
            if not rest and peer.answer_raw_probe(head.headers, transport):
                self._done()
                return
            self._to_http()  # a plain probe: aiohttp answers it (keep-alive and all)
            return
        if head.path != wire.STREAM_PATH:  # e.g. /raft/stream-x: aiohttp's 404
            self._to_http()
            return
        self._done()
        protocol = peer.open_raw_stream(head.headers, transport)
        if protocol is None:
            return  # refused: the answer is written and the connection closes
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest:
            protocol.data_received(rest)

    def _answer(self, status: int, text: str) -> None:
        self._done()
        if self._transport is not None:
            self._transport.write(httphead.text_response(status, text))
            self._transport.close()

    def _timed_out(self) -> None:
        self._timer = None
        if self._transport is None:
            return
        if self._ours or self._port.http_ready:
            log.debug("peer connection sent no request head in %.0fs; closed", HEAD_TIMEOUT)
            self._transport.close()  # connection_lost cleans up
            return
        # Undecided while aiohttp is not there yet: look again later, never forget it.
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._timed_out)

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _to_http(self) -> None:
        self._done()
        if self._port._http is None:
            if self._port._closed:
                self.abandon()
                return
            assert self._transport is not None
            self._transport.pause_reading()  # it waits for aiohttp, unread, not refused
            self._port._waiting.add(self)
            return
        self.hand_over_http()

    def hand_over_http(self) -> None:
        transport, self._transport = self._transport, None
        factory = self._port._http
        if transport is None or transport.is_closing() or factory is None:
            return
        protocol = factory()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if transport.is_reading() is False:
            transport.resume_reading()
        seen, self._seen = self._seen, b""
        if seen:
            cast("asyncio.Protocol", protocol).data_received(seen)

    def abandon(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return None  # closed before its request was whole: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()
        self._port._waiting.discard(self)
        self._transport = None
