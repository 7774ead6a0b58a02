"""The peer port on plain asyncio: Raft streams and snapshots here, the rest to aiohttp.

A member opens its peer port, starts its Raft node and connects its peers before it
imports aiohttp (httphead.py says why). `PeerPort` reads each new connection's request
line: a stream request (and an upgraded RTT probe) is read and answered here and the
connection becomes a frame stream; a snapshot upload's body is read here too, so a
restarted follower takes the leader's image without waiting for aiohttp's import. Anything
else (member info, /members, plain probes, an upload with a chunked body) is handed to
aiohttp's server with the bytes read so far, once `serve_http` has given it one. Until
then such a connection waits, paused; it is not refused. The first line decides, so a
connection never passes through here again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol, cast

from node.transport import httphead, wire
from node.transport.prober import plain_socket
from node.transport.sockbody import SocketBody

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping

    from node.transport.snapshot import Body

log = logging.getLogger(__name__)

# Request lines this port reads itself; every other connection is aiohttp's.
_OURS = (
    f"GET {wire.STREAM_PATH} ".encode(),
    f"GET {wire.PROBING_PATH} ".encode(),
    f"POST {wire.SNAPSHOT_PATH} ".encode(),
)
_LONGEST = max(len(p) for p in _OURS)
HEAD_TIMEOUT = 10.0  # seconds for a stream request's head (a slow sender is dropped)
# An upload's body is buffered up to twice this before the socket is paused (as aiohttp's
# request.content does at 2 x 64 KiB; larger, for fewer wake-ups per image).
UPLOAD_BUFFER = 256 * 1024
# Seconds an upload answered before its body was read (a refusal) keeps reading and
# dropping the body before it closes: closing a socket with unread bytes resets the
# connection, and the sender could lose the answer (aiohttp's server lingers likewise).
LINGER = 5.0


class RawPeer(Protocol):
    """What the peer port needs of the transport (node.transport.Transport has them)."""

    def open_raw_stream(
        self, headers: Mapping[str, str], transport: asyncio.Transport
    ) -> asyncio.Protocol | None: ...

    def answer_raw_probe(
        self, headers: Mapping[str, str], transport: asyncio.Transport
    ) -> bool: ...

    def receive_raw_snapshot(
        self, headers: Mapping[str, str], transport: asyncio.BaseTransport, content: Body
    ) -> asyncio.Future[tuple[int, str]]: ...


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
        if head.method == "POST":  # POST /raft/snapshot: _OURS has no other POST
            self._upload(head, rest)
            return
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

    def _upload(self, head: httphead.RequestHead, rest: bytes) -> None:
        """Read a snapshot upload's body here and answer it with the receiver's verdict.

        Our senders (aiohttp's client) send a Content-Length body and no `Expect`; a
        chunked body or `Expect: 100-continue` goes to aiohttp, which reads those.
        """
        headers = head.headers
        transport = self._transport
        assert transport is not None
        if "chunked" in headers.get("Transfer-Encoding", "").lower() or "Expect" in headers:
            self._to_http()
            return
        length = headers.get("Content-Length")
        if length is None:
            self._answer(411, "a snapshot upload must say its Content-Length")
            return
        if not (length.isascii() and length.isdigit()):
            self._answer(400, f"bad Content-Length {length[:40]!r}")
            return
        self._done()
        sock = plain_socket(transport)
        upload = _Upload(transport, int(length))
        transport.set_protocol(upload)
        if sock is not None:
            upload.read_in_threads(sock, rest)
        elif rest:
            upload.data_received(rest)
        answer = self._port._peer.receive_raw_snapshot(headers, transport, upload.body)
        answer.add_done_callback(upload.answered)

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


class _Upload(asyncio.Protocol):
    """A snapshot upload's connection once its head is read.

    At most Content-Length bytes of body go to `content`, then its EOF: the sender keeps
    its connection alive, and the receiver reads the image to the body's end (and checks
    that nothing follows the CRC). The receiver's answer is written and the connection
    closed (`Connection: close`: a connection never passes through the port again).
    """

    def __init__(self, transport: asyncio.Transport, length: int) -> None:
        self._transport = transport
        self._left = length  # body bytes not yet received
        self._answered = False
        self._linger: asyncio.TimerHandle | None = None
        self.content = asyncio.StreamReader(limit=UPLOAD_BUFFER)
        self.content.set_transport(transport)  # pauses the socket when it is full
        self._direct: SocketBody | None = None
        if not length:
            self.content.feed_eof()

    def read_in_threads(self, sock: socket.socket, prefix: bytes) -> None:
        """Read the body from the (plain TCP) socket in worker threads (sockbody.py), not
        through this protocol: the transport stops reading until the answer."""
        self._transport.pause_reading()
        self._direct = SocketBody(sock, prefix, self._left)

    @property
    def body(self) -> Body:
        """What the receiver reads the upload from."""
        return self._direct if self._direct is not None else self.content

    def data_received(self, data: bytes) -> None:
        left = self._left
        if left <= 0:
            return  # past the body: nothing a sender may pipeline behind an upload is served
        if len(data) > left:
            data = data[:left]
        self._left = left - len(data)
        if not self._answered:
            self.content.feed_data(data)
        if self._left == 0:
            self.content.feed_eof()
            if self._answered:
                self._transport.close()  # a refused upload's body is all dropped

    def eof_received(self) -> bool | None:
        return None  # the sender stopped sending: close (connection_lost ends the body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._direct is not None:
            self._direct.abort()  # a thread reading it ends now; the receiver fails
        if self._left > 0 and exc is not None:
            self.content.set_exception(exc)  # the receiver fails the upload with it
        else:
            self.content.feed_eof()  # short of Content-Length: the receiver says truncated

    def answered(self, answer: asyncio.Future[tuple[int, str]]) -> None:
        """The receiver's verdict (its task's result): write it and close."""
        self._answered = True
        transport = self._transport
        direct, self._direct = self._direct, None
        if direct is not None:  # what the threads left unread is dropped as below
            self._left = direct.left
            direct.close()
        if answer.cancelled():  # this member is stopping
            transport.close()
            return
        exc = answer.exception()
        if exc is not None:
            log.error("snapshot upload failed", exc_info=exc)
            status, text = 500, f"snapshot not received: {exc}"
        else:
            status, text = answer.result()
        if transport.is_closing():
            return  # the sender went away; the receiver counted the failure
        if text:
            transport.write(httphead.text_response(status, text))
        else:
            transport.write(httphead.response(status, {"Connection": "close"}))
        if self._left <= 0:
            transport.close()
            return
        transport.resume_reading()  # the rest of the body is dropped as it comes
        self._linger = asyncio.get_running_loop().call_later(LINGER, transport.close)
