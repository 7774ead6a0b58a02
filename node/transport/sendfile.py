"""A snapshot upload over plain TCP with `sendfile`: the image never passes through Python.

Why: aiohttp's client read the image 1 MiB at a time in a thread, handed each chunk to
the loop and wrote it through its transport, a copy and a loop turn per MiB on a box
whose two cores the follower needs at the same moment (issue 17, the catch-up). Here
one worker thread sends the request head and the MsgSnap frame, then the image file
with `socket.sendfile` (the kernel copies page cache to socket), while another computes
the image's checksum (node.imagesum's DEFAULT kind) from a read-only mapping (the
GIL released); the first then sends the checksum trailer and reads the answer. The body
is byte for byte what `send_snapshot`'s aiohttp path sends (node.transport.snapshot), so
any receiver takes it.

TLS peers (no `sendfile` through TLS) and in-memory images keep the aiohttp path.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

from node import imagesum
from node.transport import httphead

MAX_ANSWER_BYTES = 64 * 1024  # a receiver's answer is a status line and a short text
_CRC = struct.Struct("<I")


class UploadFailed(OSError):
    """The upload did not reach a receiver's answer (connect, send, or a bad answer)."""


def plain_address(url: str) -> tuple[str, int] | None:
    """(host, port) of an http:// peer URL; None when the upload needs aiohttp (TLS)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    try:
        return parts.hostname, parts.port or 80
    except ValueError:
        return None


def host(url: str) -> str:
    """The Host header for `url`: its authority (brackets and port included)."""
    return urlsplit(url).netloc.rpartition("@")[2]


def image_crc(path: str, size: int) -> int:
    """Worker thread: the checksum (imagesum.DEFAULT) of the first `size` bytes of `path`,
    from a mapping (no copy into Python; the GIL is released while it runs)."""
    if size == 0:
        return 0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if len(m) < size:
            raise UploadFailed(f"{path} shrank while being sent ({size} -> {len(m)} bytes)")
        with memoryview(m) as view, view[:size] as image:
            return imagesum.default()(image, 0)


def _send_image(sock: socket.socket, head: bytes, path: str, size: int) -> None:
    """Worker thread: the request head and MsgSnap frame, then `size` bytes of `path`."""
    sock.sendall(head)
    with open(path, "rb") as f:
        sent = sock.sendfile(f, 0, size) if size else 0
    if sent != size:
        raise UploadFailed(f"{path} changed size while being sent ({size} -> {sent})")


def _finish(sock: socket.socket, crc: int) -> tuple[int, str]:
    """Worker thread: the checksum trailer, then the receiver's answer (status, text)."""
    sock.sendall(_CRC.pack(crc))
    data = b""
    while httphead.HEAD_END not in data:
        more = sock.recv(MAX_ANSWER_BYTES)
        if not more:
            raise UploadFailed("the receiver closed the connection before answering")
        data += more
        if len(data) > MAX_ANSWER_BYTES:
            raise UploadFailed("the receiver's answer head is too large")
    head, _, text = data.partition(httphead.HEAD_END)
    try:
        answer = httphead.parse_response(head)
    except httphead.HeadError as exc:
        raise UploadFailed(str(exc)) from exc
    length = answer.headers.get("Content-Length", "0")
    want = int(length) if length.isdigit() else 0
    while len(text) < min(want, MAX_ANSWER_BYTES):
        more = sock.recv(MAX_ANSWER_BYTES)
        if not more:
            break
        text += more
    return answer.status, text.decode(errors="replace").strip()


async def upload(
    address: tuple[str, int],
    head: bytes,
    path: str,
    size: int,
    *,
    dial_timeout: float,
    response_timeout: float,
) -> tuple[int, str]:
    """Send `head` (request head + MsgSnap frame), the image at `path` and its checksum to
    `address`; return the answer's (status, text). Raises OSError (UploadFailed,
    timeouts) on any failure. Cancelled, it shuts the socket so its threads end."""
    sock = await asyncio.to_thread(socket.create_connection, address, dial_timeout)
    sock.settimeout(response_timeout)  # every send and read: as aiohttp's sock_read
    crc = asyncio.ensure_future(asyncio.to_thread(image_crc, path, size))
    sending = asyncio.ensure_future(asyncio.to_thread(_send_image, sock, head, path, size))
    threads: list[asyncio.Future[Any]] = [crc, sending]
    try:
        await asyncio.shield(asyncio.gather(crc, sending))
        finish = asyncio.ensure_future(asyncio.to_thread(_finish, sock, crc.result()))
        threads.append(finish)
        return await asyncio.shield(finish)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a thread still blocked on it
        ended = asyncio.gather(*threads, return_exceptions=True)
        ended.add_done_callback(lambda _: sock.close())  # no thread holds it then
