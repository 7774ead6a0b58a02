"""`TLSAcceptor`: an https listener that behaves as etcd's Go listener does.

asyncio's `create_server(ssl=...)` (and aiohttp's `TCPSite(ssl_context=...)`) hands every
accepted socket straight to the TLS handshake, which has two costs an operator feels:
- a handshake that fails (unknown CA, expired or wrong-host certificate, no client
  certificate under --client-cert-auth) is dropped silently on the server side; etcd
  logs `rejected connection from "addr" (error "...")` for each one;
- a plain-HTTP client gets a closed connection; Go's server answers
  `HTTP/1.0 400 Bad Request` with "Client sent an HTTP request to an HTTPS server.".

This listener accepts sockets itself, peeks at the first byte (a TLS record starts with
0x16, a handshake), answers plain HTTP as Go does, and runs the handshake through
`loop.connect_accepted_socket`, which raises the handshake's error, so it can be logged
with the remote address and the reason. Connections that succeed go to the protocol
factory it was given: aiohttp's server (tls_site.py), the gRPC mux, or the peer port
(node.transport.peerport), which must work before aiohttp is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING

from node.tls import describe_error

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("node.member.tls_site")  # the name operators' log filters know

TLS_HANDSHAKE_RECORD = 0x16
# Go's net/http answer to an HTTP request on a TLS listener, byte for byte.
GO_HTTP_ON_HTTPS = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
HANDSHAKE_TIMEOUT = 10.0  # seconds for the first byte and then the handshake
REPEAT_SECONDS = 30.0  # the same refusal from the same host is logged once per this period


class TLSAcceptor:
    """Serve `protocol_factory` on host:port over TLS, logging rejected handshakes."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        listener: str,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        backlog: int = 128,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._listener = listener  # "client", "peer" or "metrics", for the log lines
        self._factory = protocol_factory
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._warned: dict[tuple[str, str], float] = {}  # (remote host, reason) -> last WARNING

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        sock = socket.create_server((self._host, self._port), backlog=self._backlog)
        sock.setblocking(False)
        self._sock = sock
        self._accept_task = asyncio.create_task(self._accept_loop(sock), name=f"accept {self.name}")

    async def stop(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except OSError as err:  # EMFILE and friends: back off, keep the listener
                log.warning("accept failed listener=%s error=%s", self._listener, err)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._serve(conn, addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        remote = f"{addr[0]}:{addr[1]}"
        handed_over = False
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                first = await _peek(loop, conn)
            if not first:
                return
            if first[0] != TLS_HANDSHAKE_RECORD:
                if first.isalpha():  # an HTTP method: Go answers, anything else is dropped
                    await _answer_plain_http(loop, conn)
                self._rejected(remote, "first record does not look like a TLS handshake")
                return
            handed_over = True
            await loop.connect_accepted_socket(
                self._factory,
                conn,
                ssl=self._ssl_context,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (ssl.SSLError, OSError, TimeoutError) as err:
            why = "timeout" if isinstance(err, TimeoutError) else describe_error(err)
            self._rejected(remote, why)
        finally:
            # NB: once handed over, the loop's transport owns the socket and closes it on
            # a failed handshake; closing it here too could close a reused descriptor.
            if not handed_over:
                conn.close()

    def _rejected(self, remote: str, reason: str) -> None:
        """etcd's `rejected connection from "addr" (error "...")`, as a key=value WARNING.

        A peer with a bad certificate redials about once a second: the first refusal
        per remote host and reason is a WARNING, repeats within REPEAT_SECONDS are DEBUG.
        """
        now = time.monotonic()
        key = (remote.rpartition(":")[0], reason)
        last = self._warned.get(key)
        repeated = last is not None and now - last < REPEAT_SECONDS
        level = logging.DEBUG if repeated else logging.WARNING
        if level == logging.WARNING:
            if len(self._warned) > 1024:  # bounded: forget the oldest half
                for old in sorted(self._warned, key=self._warned.__getitem__)[:512]:
                    del self._warned[old]
            self._warned[key] = now
        log.log(
            level,
            "rejected connection listener=%s remote-addr=%s error=%r",
            self._listener,
            remote,
            reason,
            extra={"fields": {"listener": self._listener, "remote-addr": remote, "error": reason}},
        )


async def _answer_plain_http(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    """Go's 400, then a clean close: read what the client sent (bounded) so no RST eats it."""
    with contextlib.suppress(OSError, TimeoutError):
        await loop.sock_sendall(conn, GO_HTTP_ON_HTTPS)
        conn.shutdown(socket.SHUT_WR)
        async with asyncio.timeout(1.0):
            drained = 0
            while drained < 1 << 20:
                chunk = await loop.sock_recv(conn, 65536)
                if not chunk:
                    break
                drained += len(chunk)


async def _peek(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    """The first byte the client sends, left in the socket for the TLS handshake."""
    fd = conn.fileno()
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    try:
        return conn.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return b"\x00"  # spurious wake-up: treat as garbage, the client may retry
