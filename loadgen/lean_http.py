"""A lean HTTP/1.1 keep-alive client on asyncio's Protocol: the load path of `--protocol http`.

Why not aiohttp here: a request through aiohttp's session costs the generator some
150-250 µs of CPU (URL objects, header multidicts, a response object, a stream reader,
a timeout context), so at 64 clients the generator measured itself nearly as much as the
cluster. The load path needs much less: POST a body whose bytes are prepared once per
workload to one endpoint, read the status line and the body, keep the socket for the next
request. This module does only that; every other call (watch streams, leases' set-up,
status) stays on `loadgen.client.EtcdClient`.

What it speaks: requests framed by Content-Length; answers framed by Content-Length or
`Transfer-Encoding: chunked` (Go's net/http, hence etcd's gateway, chunks answers larger
than its 2 KiB buffer), or by the close of the connection when neither is given; a
`Connection: close` answer (or an HTTP/1.0 one without keep-alive) retires its socket.
One request at a time per socket (no pipelining); a pool holds up to `limit` sockets.

Every failure is an `EtcdError` of the report's kinds: a non-200 answer is classified from
etcd's JSON body, a refused connect is `conn_refused`, a socket closed or reset while a
request waits is `conn_lost`, a request past its deadline is `timeout` (its socket is
closed, since its late answer would otherwise be read as the next request's).
"""

from __future__ import annotations

import asyncio
import re
import ssl as ssl_mod
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from loadgen.errors import CONN_LOST, CONN_REFUSED, OTHER, TIMEOUT, EtcdError, error_from_body

if TYPE_CHECKING:
    from ssl import SSLContext

#: Largest response head accepted (status line + headers); etcd's are ~150 bytes.
MAX_HEAD = 64 * 1024
_CRLF2 = b"\r\n\r\n"
#: A socket idle longer than this is closed rather than reused (seconds). Servers close
#: idle keep-alive sockets (aiohttp's after 75 s, so raftmon's gateway's); a request sent
#: as the server closes would fail as `conn_lost` without the server ever seeing it, so
#: the client retires them first, as aiohttp's client does after 15 s.
IDLE_LIMIT = 15.0


#: The headers `parse_head` reads (in a lowered head), found by the regex engine: an
#: answer's other headers cost no Python code, which counts at one client (`Recorder.record`).
_FRAMING_HEADERS = re.compile(
    rb"\r\n[ \t]*(content-length|transfer-encoding|connection)[ \t]*:([^\r]*)"
)


class HttpProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 answer this client can frame."""


def parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    """(status, content length or -1, chunked, keep-alive) of a response head (no CRLFCRLF).

    Header names are matched case-insensitively, as HTTP requires; only the three
    headers that frame the body or decide the socket's reuse are read.
    """
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise HttpProtocolError(f"not an HTTP/1.x status line: {head[:40]!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise HttpProtocolError(f"bad status line: {head[:40]!r}") from None
    keep_alive = head[7:8] == b"1"  # HTTP/1.1 keeps the socket unless told otherwise
    length = -1
    chunked = False
    for name, value in _FRAMING_HEADERS.findall(head.lower()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise HttpProtocolError(f"bad Content-Length: {value!r}") from None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            if b"close" in value:
                keep_alive = False
            elif b"keep-alive" in value:
                keep_alive = True
    if chunked:
        length = -1
    return status, length, chunked, keep_alive


def parse_chunked(buf: bytes | bytearray, pos: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a chunked body starting at `pos`, or None while incomplete."""
    parts: list[bytes] = []
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
        pos = eol + 2
        if size == 0:
            # Trailers (rare) end with an empty line, as the head does.
            if buf[pos : pos + 2] == b"\r\n":
                return b"".join(parts), pos + 2
            end = buf.find(_CRLF2, pos)
            if end < 0:
                return None
            return b"".join(parts), end + 4
        if n < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


#: `frame_answer`'s verdict on an answer that has neither a length nor chunks.
UNTIL_CLOSE = -1


def frame_answer(buf: bytearray) -> tuple[int, bytes, bool] | int:
    """(status, body, keep-alive) of the one whole answer in `buf`, which is then emptied;
    else the length `buf` must reach before a parse can complete, or UNTIL_CLOSE.

    Shared by the event loop's sockets and the blocking ones (`loadgen.blocking_http`), so
    both read an answer alike. Interim answers (100 Continue) are skipped. Bytes after the
    answer are an error: one request is outstanding per socket, so nobody asked for them.
    """
    head_end = buf.find(_CRLF2)
    if head_end < 0:
        if len(buf) > MAX_HEAD:
            raise HttpProtocolError("response head too large")
        return len(buf) + 1
    status, length, chunked, keep_alive = parse_head(bytes(buf[:head_end]))
    body_start = head_end + 4
    if 100 <= status < 200:  # an interim answer: skip it
        del buf[:body_start]
        return frame_answer(buf) if buf else 0
    if length >= 0:
        end = body_start + length
        if len(buf) < end:
            return end
        body = bytes(buf[body_start:end])
    elif chunked:
        framed = parse_chunked(buf, body_start)
        if framed is None:
            return len(buf) + 1
        body, end = framed
    else:
        return UNTIL_CLOSE
    if end != len(buf):
        raise HttpProtocolError(f"{len(buf) - end} bytes after the answer")
    buf.clear()
    return status, body, keep_alive


def close_delimited(buf: bytearray) -> tuple[int, bytes]:
    """(status, body) of an answer framed by the end of its connection, once it ended."""
    head_end = buf.find(_CRLF2)
    return int(buf[9:12]), bytes(buf[head_end + 4 :])


class _Socket(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.buf = bytearray()
        self.need = 0  # bytes of buf needed before a parse can complete (0: parse now)
        self.open = True
        self.reusable = True
        self.until_close = False  # an answer framed by the end of the connection
        self.idle_since = 0.0  # loop time it went back to the pool

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for: the framing is lost, so is the socket.
            self.fail(EtcdError(OTHER, "unsolicited bytes from the server"))
            return
        buf = self.buf
        buf += data
        if len(buf) < self.need or self.until_close:
            return
        try:
            answer = self._parse(buf)
        except HttpProtocolError as exc:
            self.fail(EtcdError(OTHER, f"bad HTTP answer: {exc}"))
            return
        if answer is not None:
            self.waiter = None
            waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.until_close and self.buf:
                waiter.set_result(close_delimited(self.buf))
            else:
                detail = f": {exc}" if exc else ""
                message = "connection closed by the server" + detail
                waiter.set_exception(EtcdError(CONN_LOST, message))
        self.waiter = None

    # -- framing -------------------------------------------------------------------------
    def _parse(self, buf: bytearray) -> tuple[int, bytes] | None:
        framed = frame_answer(buf)
        if isinstance(framed, int):
            if framed == UNTIL_CLOSE:  # no framing: the body ends when the socket does
                self.until_close = True
                self.reusable = False
            else:
                self.need = framed
            return None
        status, body, keep_alive = framed
        self.need = 0
        if not keep_alive:
            self.reusable = False
        return status, body

    def fail(self, error: EtcdError) -> None:
        """Fail the waiting request with `error` and drop the socket."""
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.open = False
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Target:
    """One endpoint as both clients dial it (host, port, TLS) and their request bytes:
    each path's `POST ... Content-Length: ` head is prepared once."""

    def __init__(self, endpoint: str, ssl: SSLContext | None) -> None:
        url = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
        self.https = url.scheme == "https"
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if self.https else 80)
        self.ssl: SSLContext | None = None
        if self.https:
            self.ssl = ssl or ssl_mod.create_default_context()
        self._heads: dict[str, bytes] = {}
        self._head_template = (
            b" HTTP/1.1\r\nHost: "
            + url.netloc.encode("idna")
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def request(self, path: str, body: bytes) -> bytes:
        """The whole request: `POST path HTTP/1.1`, the fixed headers, `body`."""
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = b"POST " + path.encode() + self._head_template
        return head + str(len(body)).encode() + _CRLF2 + body


class LeanHttp:
    """A pool of up to `limit` keep-alive sockets to one endpoint; `post` is the hot path.

    `timeout` bounds each request from its send (connecting included) to its answer.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float,
        limit: int,
        ssl: SSLContext | None = None,
        idle_limit: float = IDLE_LIMIT,
    ) -> None:
        self.idle_limit = idle_limit
        self.target = Target(endpoint, ssl)
        self.timeout = timeout
        self.limit = max(1, limit)
        self._idle: list[_Socket] = []
        self._count = 0  # sockets open or opening
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    async def post(self, path: str, body: bytes) -> bytes:
        """POST `body` to `path`; the body of a 200 answer, else raise EtcdError."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.timeout
        sock = self._idle_socket(now) if self._idle else None
        if sock is None:
            sock = await self._acquire(loop, deadline)
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        sock.waiter = waiter
        transport = sock.transport
        assert transport is not None
        transport.write(self.target.request(path, body))
        timer = loop.call_at(deadline, _expire, sock, waiter)
        try:
            status, payload = await waiter
        except BaseException:
            sock.close()
            self._release(sock)
            raise
        finally:
            timer.cancel()
        self._release(sock)
        if status != 200:
            raise error_from_body(status, payload)
        return payload

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Socket:
        """A socket for one request: a new one while under `limit`, else the next freed."""
        while True:
            sock = self._idle_socket(loop.time())
            if sock is not None:
                return sock
            if self._count < self.limit:
                self._count += 1
                try:
                    return await self._connect(loop, deadline)
                except BaseException:
                    self._count -= 1
                    self._wake()
                    raise
            freed: asyncio.Future[None] = loop.create_future()
            self._waiters.append(freed)
            try:
                await asyncio.wait_for(freed, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise EtcdError(TIMEOUT, "client timeout (waiting for a free socket)") from None
            finally:
                if freed in self._waiters:
                    self._waiters.remove(freed)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Socket:
        if self._closed:
            raise EtcdError(OTHER, "client closed")
        target = self.target
        try:
            async with asyncio.timeout_at(deadline):
                _transport, sock = await loop.create_connection(
                    _Socket,
                    target.host,
                    target.port,
                    ssl=target.ssl,
                    server_hostname=target.host if target.https else None,
                )
        except TimeoutError:
            raise EtcdError(TIMEOUT, f"client timeout connecting to {target.address}") from None
        except OSError as exc:
            raise connect_error(target, exc) from exc
        return sock

    def _idle_socket(self, now: float) -> _Socket | None:
        """The most recently used idle socket still fit for a request, or None.

        Sockets the server closed while idle, and sockets idle past `idle_limit`, go.
        """
        idle = self._idle
        while idle:
            sock = idle.pop()
            if sock.open and now - sock.idle_since <= self.idle_limit:
                return sock
            sock.close()
            self._count -= 1
        return None

    def _release(self, sock: _Socket) -> None:
        """Back to the pool when it can carry another request; else one fewer socket."""
        if sock.reusable and sock.open and not self._closed:
            sock.idle_since = asyncio.get_running_loop().time()
            self._idle.append(sock)
        else:
            sock.close()
            self._count -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            freed = self._waiters.pop(0)
            if not freed.done():
                freed.set_result(None)
                return

    async def close(self) -> None:
        """Close every idle socket (sockets in use close when their request ends)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
        self._count -= len(idle)
        # Let the transports' close callbacks run before the loop may go away.
        await asyncio.sleep(0)


def connect_error(target: Target, exc: OSError) -> EtcdError:
    """A failed connect as the report counts it: a TLS handshake's failure is `other`,
    anything else (refused, unreachable) `conn_refused`."""
    if isinstance(exc, ssl_mod.SSLError):
        return EtcdError(OTHER, f"TLS handshake with {target.address}: {exc}")
    return EtcdError(CONN_REFUSED, f"{target.address}: {exc}")


def _expire(sock: _Socket, waiter: asyncio.Future[tuple[int, bytes]]) -> None:
    """A request's deadline passed: fail it as `timeout` and drop its socket."""
    if sock.waiter is waiter and not waiter.done():
        sock.fail(EtcdError(TIMEOUT, "client timeout"))
