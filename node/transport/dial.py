"""Dial a peer's stream on plain asyncio: one GET with `Upgrade: tcp`, then the raw socket.

Why not aiohttp's client: see httphead.py (a member connects its peers before aiohttp is
imported). A stream asks for a fresh TCP connection every time (never a pooled one: a
dial must fail fast once the peer's listener is closed), sends its head, and reads the
answer's head. On 101 the caller gets the transport and a future that ends with the
connection; anything else is a refusal with the status and the start of its text.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from node.transport import httphead

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_REFUSAL_BYTES = 4096  # the start of a refusal's text is enough for the log line
_default_tls: ssl.SSLContext | None = None


class DialError(OSError):
    """The stream could not be dialled (refused, reset, TLS, a malformed answer)."""


class Refused:
    """The peer answered the stream request with something other than 101."""

    __slots__ = ("reason", "status")

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


class _StreamClient(asyncio.Protocol):
    """Reads the answer's head; after a 101, only watches for the connection's end.

    The receiver sends nothing after its 101; any bytes it does send are ignored.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[tuple[httphead.ResponseHead, bytes]] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.body_done: asyncio.Future[None] = loop.create_future()
        self._buffer = b""
        self.body = b""
        self._body_limit = -1  # -1: reading the head; then bytes of body wanted (0: none)

    def data_received(self, data: bytes) -> None:
        if not self.head.done():
            self._buffer += data
            end = self._buffer.find(httphead.HEAD_END)
            if end < 0:
                if len(self._buffer) > httphead.MAX_HEAD_BYTES:
                    self._fail(DialError("answer head too large"))
                return
            try:
                head = httphead.parse_response(self._buffer[:end])
            except httphead.HeadError as exc:
                self._fail(DialError(str(exc)))
                return
            rest = self._buffer[end + len(httphead.HEAD_END) :]
            self._buffer = b""
            self.head.set_result((head, rest))
            return
        if self._body_limit > 0 and not self.body_done.done():
            self.body += data
            if len(self.body) >= self._body_limit:
                self.body_done.set_result(None)

    def read_body(self, first: bytes, length: int) -> None:
        """Collect up to `length` bytes of a refusal's body, starting with `first`."""
        self._body_limit = min(length, MAX_REFUSAL_BYTES)
        self.body = first
        if len(self.body) >= self._body_limit and not self.body_done.done():
            self.body_done.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if not self.head.done():
            self.head.set_exception(exc)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc if isinstance(exc, OSError) else DialError("connection closed"))
        if not self.body_done.done():
            self.body_done.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)


class Stream:
    """An upgraded stream: write frames to `transport`; `closed` ends with the connection."""

    __slots__ = ("closed", "transport")

    def __init__(self, transport: asyncio.Transport, closed: asyncio.Future[None]) -> None:
        self.transport = transport
        self.closed = closed


def _tls_for(url: str, context: ssl.SSLContext | bool) -> ssl.SSLContext | None:
    global _default_tls
    if not url.startswith("https://"):
        return None
    if isinstance(context, ssl.SSLContext):
        return context
    if _default_tls is None:
        _default_tls = ssl.create_default_context()
    return _default_tls


async def dial_stream(
    url: str,
    path: str,
    headers: Mapping[str, str],
    *,
    tls: ssl.SSLContext | bool,
    timeout: float,  # noqa: ASYNC109 - the dial's own bound, as aiohttp's sock_connect
) -> Stream | Refused:
    """Open `url + path` as a stream within `timeout` seconds; raises OSError or TimeoutError.

    `tls` verifies an https peer (True: the system's default verification).
    """
    parts = urlsplit(url)
    if parts.hostname is None:
        raise DialError(f"URL {url!r} has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    context = _tls_for(url, tls)
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            # NB: uvloop's transports are not asyncio.Transport subclasses; same interface
            transport, client = await loop.create_connection(
                lambda: _StreamClient(loop),
                parts.hostname,
                port,
                ssl=context,
                server_hostname=parts.hostname if context is not None else None,
            )
            transport.write(httphead.request("GET", path, parts.netloc, headers))
            head, rest = await client.head
            if head.status == 101:
                stream = Stream(transport, client.closed)
                transport = None  # the caller owns it now
                return stream
        try:
            length = int(head.headers.get("Content-Length", str(MAX_REFUSAL_BYTES)))
        except ValueError:
            length = MAX_REFUSAL_BYTES
        client.read_body(rest, length)
        if length > 0:
            # the refusal counts even when its text is late: wait a bounded time for it
            await asyncio.wait([client.body_done], timeout=timeout)
        text = client.body[:length].decode(errors="replace").strip()[:200]
        return Refused(head.status, text)
    finally:
        if transport is not None:
            transport.close()
