"""A snapshot upload's body read straight from its plain TCP socket by worker threads.

Why: a 51 MB image through the event loop costs the follower ~200 small reads, two
copies in asyncio's buffers and a thread hop per MiB to write it, and all of that
competes for the GIL with the aiohttp import of a member that just started (issue 17,
the catch-up). Here the peer port pauses the connection's transport and the image goes
socket -> 1 MiB buffer -> file in one worker thread: `recv_into`, the checksum and
`os.write` all release the GIL, so the loop is woken once per MiB only to start the
early fdatasyncs (node.transport.snapshot._EarlySync).

The thread reads a duplicate of the connection's descriptor, never past the body's
Content-Length; the transport stays the connection's owner (it writes the answer and
closes). TLS connections cannot be read this way and keep the StreamReader path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.imagesum import Checksum

# Seconds one socket read may wait for bytes: a sender that stalls this long fails the
# upload (aiohttp's server bounds an idle read likewise; a live sender never waits).
READ_TIMEOUT = 30.0
_SMALL_READ = 64 * 1024  # a head-sized read (the MsgSnap frame, the checksum trailer)
_T = TypeVar("_T")


class SocketBody:
    """The `Body` of one upload (node.transport.snapshot.Body), plus `copy_to`.

    `prefix` is what the peer port had already read past the request head; `length`
    is the Content-Length. `left` counts body bytes still in the socket.
    """

    def __init__(self, sock: socket.socket, prefix: bytes, length: int) -> None:
        self._sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._sock.settimeout(READ_TIMEOUT)  # non-blocking fd, poll() in the thread
        self._buf = bytearray(prefix[:length])
        self.left = length - len(self._buf)

    def close(self) -> None:
        """Let go of the duplicate descriptor (the transport keeps the connection)."""
        self._sock.close()

    def abort(self) -> None:
        """Wake a thread blocked on the socket: the upload is abandoned."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        self.left -= len(data)
        return data

    async def _fill(self, n: int) -> bool:
        """At least `n` bytes buffered, or False at the body's (or the connection's) end."""
        while len(self._buf) < n:
            if self.left <= 0:
                return False
            want = min(self.left, max(n - len(self._buf), _SMALL_READ))
            data = await self._in_thread(self._recv, want)
            if not data:
                return False
            self._buf += data
        return True

    async def readexactly(self, n: int) -> bytes:
        if not await self._fill(n):
            partial = bytes(self._buf)
            self._buf.clear()
            raise asyncio.IncompleteReadError(partial, n)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def read(self, n: int = -1) -> bytes:
        if not self._buf:
            await self._fill(1)
        if n < 0:
            n = len(self._buf)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def copy_to(
        self,
        fd: int,
        size: int,
        chunk_size: int,
        wrote: Callable[[int], None],
        checksum: Checksum,
    ) -> tuple[int, int]:
        """Append up to `size` body bytes to file `fd` in a worker thread; return (bytes
        copied, their `checksum`): fewer than `size` when the body ends early. `wrote(n)` is
        called on the loop after each chunk is in the file."""
        loop = asyncio.get_running_loop()
        head = bytes(self._buf[:size])
        del self._buf[: len(head)]

        def report(n: int) -> None:
            loop.call_soon_threadsafe(wrote, n)

        return await self._in_thread(self._copy, fd, head, size, chunk_size, report, checksum)

    def _copy(
        self,
        fd: int,
        head: bytes,
        size: int,
        chunk_size: int,
        wrote: Callable[[int], None],
        checksum: Checksum,
    ) -> tuple[int, int]:
        """Worker thread: `copy_to`'s loop (one buffer, no copy but the kernel's)."""
        crc = checksum(head, 0)
        _write_all(fd, memoryview(head))
        done = len(head)
        buf = bytearray(min(chunk_size, max(size - done, 1)))
        view = memoryview(buf)
        while done < size:
            want = min(len(buf), size - done, self.left)
            if want <= 0:
                break
            n = self._sock.recv_into(view, want)
            if not n:
                break
            self.left -= n
            chunk = view[:n]
            crc = checksum(chunk, crc)
            _write_all(fd, chunk)
            done += n
            wrote(n)
        return done, crc

    async def _in_thread(self, call: Callable[..., _T], *args: object) -> _T:
        """Run `call` in a worker thread; on cancellation wake it (abort) and wait for it,
        so it never touches the socket or a file after the caller moved on."""
        future = asyncio.ensure_future(asyncio.to_thread(call, *args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.abort()
            with contextlib.suppress(Exception):
                await future
            raise


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]
