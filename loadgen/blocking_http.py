"""Blocking HTTP/1.1 keep-alive sockets: `--protocol http`'s path for a worker's few clients.

Why: on the event loop (`loadgen.lean_http`) every answer costs a whole loop turn: an
epoll wait, a read callback, a future, a task step, a timer set and cancelled. With 64
clients many answers share a turn (32-47 µs of CPU per request); with one client each
request pays a turn of its own (83-138 µs), over issue 17's 100 µs. A client thread with
a blocking socket pays one `send` and, most often, one `recv` per request, and sleeps in
the kernel in between. `loadgen.runner` runs a worker's clients on such threads when they
are few (`threaded_clients`).

The framing, the request bytes and the errors are `loadgen.lean_http`'s (`frame_answer`,
`Target`, the same `EtcdError` kinds), so a report reads alike whichever path sent it.

`post` is a coroutine function that never suspends: the workloads' operations, written
once as coroutines over a `loadgen.conn.Conn`, run unchanged on a client thread, each
completed in one step by `run_now`. (Awaited on the event loop, as a workload's set-up
does, it blocks the loop for one request, which nothing else needs meanwhile.)

Timeouts: the kernel's (SO_RCVTIMEO / SO_SNDTIMEO), set to what is left of the request's
deadline, so a request costs no poll() beside its send and recv as a Python socket
timeout would; a wait past it is `timeout`, and the socket is dropped (its late answer
would otherwise be read as the next request's).
"""

from __future__ import annotations

import socket
import ssl as ssl_mod
import struct
import time
from typing import TYPE_CHECKING, Any, TypeVar

from loadgen.errors import CONN_LOST, OTHER, TIMEOUT, EtcdError, error_from_body
from loadgen.lean_http import (
    IDLE_LIMIT,
    UNTIL_CLOSE,
    HttpProtocolError,
    Target,
    close_delimited,
    connect_error,
    frame_answer,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from ssl import SSLContext

T = TypeVar("T")

#: Bytes read per recv: etcd's answers to the workloads' requests are a few hundred bytes.
RECV_SIZE = 64 * 1024
#: A socket idle longer than this (seconds) is checked for a close by the server (one
#: non-blocking peek) before it carries a request; one used again at once is not.
CHECK_AFTER = 0.01
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
#: What a recv or send past its kernel timeout raises (TLS sockets: the SSL flavours).
_WAIT_EXPIRED = (TimeoutError, BlockingIOError, ssl_mod.SSLWantReadError, ssl_mod.SSLWantWriteError)


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, completed in one step.

    A coroutine that does suspend (it awaited something that needs the event loop) is
    a bug of the caller, not a request's failure: it is closed and RuntimeError raised.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a request on a client thread waited for the event loop")


def _timeval(seconds: float) -> bytes:
    """struct timeval of `seconds` (at least 1 µs: 0 would mean wait forever)."""
    whole, micros = divmod(max(int(seconds * 1e6), 1), 1_000_000)
    return struct.pack("@ll", whole, micros)


class _Link:
    """One connected socket carrying one request at a time."""

    __slots__ = ("buf", "idle_since", "reusable", "sock", "wait")

    def __init__(self, sock: socket.socket, wait: float) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.wait = -1.0  # the kernel timeout currently set (seconds)
        self.reusable = True
        self.idle_since = 0.0
        self.set_wait(wait)

    def set_wait(self, seconds: float) -> None:
        value = _timeval(seconds)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        self.wait = seconds

    def closed_while_idle(self) -> bool:
        """Whether the server closed the socket (or sent bytes nobody asked for) while idle.

        The peek reads the kernel's socket, under TLS too (`socket.socket.recv`, not the
        TLS layer's): any byte there now, a close or not, unfits it for the next answer.
        """
        try:
            socket.socket.recv(self.sock, 1, _PEEK)
        except BlockingIOError:
            return False  # nothing to read: still open
        except OSError:
            pass
        return True

    def exchange(self, request: bytes, deadline: float, timeout: float) -> tuple[int, bytes]:
        """Send `request` and read its answer by `deadline`; (status, body)."""
        if self.wait != timeout:
            self.set_wait(timeout)
        sock = self.sock
        sock.sendall(request)
        buf = self.buf
        need = 0
        while True:
            data = sock.recv(RECV_SIZE)
            if not data:
                return self._ended(need)
            buf += data
            if len(buf) < need or need == UNTIL_CLOSE:
                continue
            framed = frame_answer(buf)
            if isinstance(framed, int):
                need = framed
                if need == UNTIL_CLOSE:
                    self.reusable = False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.set_wait(left)  # the next recv may wait only for what is left
                continue
            status, body, keep_alive = framed
            if not keep_alive:
                self.reusable = False
            return status, body

    def _ended(self, need: int) -> tuple[int, bytes]:
        """The server closed the socket mid-answer: the answer, if its close frames it."""
        self.reusable = False
        if need == UNTIL_CLOSE and self.buf:
            return close_delimited(self.buf)
        raise EtcdError(CONN_LOST, "connection closed by the server")

    def close(self) -> None:
        self.reusable = False
        self.sock.close()


class BlockingHttp:
    """Keep-alive sockets to one endpoint, each carrying one client thread's request at a
    time; idle ones wait in a pool (list append and pop are atomic under the GIL).

    `timeout` bounds each request from its send (connecting included) to its answer.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float,
        ssl: SSLContext | None = None,
        idle_limit: float = IDLE_LIMIT,
    ) -> None:
        self.target = Target(endpoint, ssl)
        self.timeout = timeout
        self.idle_limit = idle_limit
        self._idle: list[_Link] = []
        self._closed = False
        self.connects = 0  # sockets opened (the tests' view of reuse)

    async def post(self, path: str, body: bytes) -> bytes:
        """POST `body` to `path`; the body of a 200 answer, else raise EtcdError. Blocks."""
        return self.post_now(path, body)

    def post_now(self, path: str, body: bytes) -> bytes:
        """`post`, as a plain blocking call."""
        deadline = time.monotonic() + self.timeout
        link = self._take(deadline)
        try:
            status, payload = link.exchange(self.target.request(path, body), deadline, self.timeout)
        except BaseException as exc:
            link.close()
            error = request_error(exc)
            if error is None:
                raise
            raise error from exc
        self._give_back(link)
        if status != 200:
            raise error_from_body(status, payload)
        return payload

    def _take(self, deadline: float) -> _Link:
        """The most recently used idle socket still fit for a request, else a new one."""
        idle = self._idle
        now = time.monotonic()
        while idle:
            try:
                link = idle.pop()
            except IndexError:  # another thread took the last one
                break
            idle_for = now - link.idle_since
            if idle_for <= CHECK_AFTER or (
                idle_for <= self.idle_limit and not link.closed_while_idle()
            ):
                return link
            link.close()
        return self._connect(deadline)

    def _connect(self, deadline: float) -> _Link:
        if self._closed:
            raise EtcdError(OTHER, "client closed")
        target = self.target
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock = socket.create_connection((target.host, target.port), timeout=left)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.ssl is not None:
                sock = target.ssl.wrap_socket(sock, server_hostname=target.host)
            sock.settimeout(None)  # from here on, the kernel's timeouts (_Link.set_wait)
        except TimeoutError:
            raise EtcdError(TIMEOUT, f"client timeout connecting to {target.address}") from None
        except OSError as exc:
            raise connect_error(target, exc) from exc
        self.connects += 1
        return _Link(sock, self.timeout)

    def _give_back(self, link: _Link) -> None:
        if link.reusable and not self._closed:
            link.idle_since = time.monotonic()
            self._idle.append(link)
        else:
            link.close()

    async def close(self) -> None:
        """Close every idle socket (sockets in use close when their request ends)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for link in idle:
            link.close()


def request_error(exc: BaseException) -> EtcdError | None:
    """A socket's failure during a request as the report counts it; None for anything
    else (an EtcdError already, or a bug), which is passed on as it is."""
    if isinstance(exc, _WAIT_EXPIRED):
        return EtcdError(TIMEOUT, "client timeout")
    if isinstance(exc, HttpProtocolError):
        return EtcdError(OTHER, f"bad HTTP answer: {exc}")
    if isinstance(exc, ssl_mod.SSLError):
        return EtcdError(OTHER, f"TLS: {exc}")
    if isinstance(exc, OSError):
        return EtcdError(CONN_LOST, f"connection lost: {exc}")
    return None
