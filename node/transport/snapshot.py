"""Snapshot streaming: a MsgSnap frame, then the db image in chunks, then its checksum.

Body of POST /raft/snapshot::

    frame(MsgSnap, metadata only) || db image (X-Raftmon-Snapshot-Size bytes) || checksum:u32le

The checksum is of the kind X-Raftmon-Snapshot-Checksum names (node.imagesum: CRC-32C from
this sender; no header means CRC-32, an older sender's); a receiver refuses a kind it does
not know before reading the image.

The image never sits in memory whole on either side: the sender sends the file by
`sendfile` (plain TCP: node.transport.sendfile) or reads it in chunks in a worker thread
(TLS, through aiohttp's client); the receiver appends it to a temporary file (in one
worker thread when the peer port reads a plain socket: node.transport.sockbody), fsyncs
it, renames it into place and fsyncs the directory, so a crash leaves either no file or a
complete one. The size header plus the checksum trailer turn a truncated or garbled upload
into a clean failure instead of a corrupt state machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from typing import TYPE_CHECKING, BinaryIO, Protocol

from node import imagesum
from node.raft.messages import Message, MessageType
from node.transport import httphead, sendfile, wire
from node.transport.codec import LENGTH_SIZE, CodecError, decode_body, encode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    import aiohttp

_CRC = struct.Struct("<I")
# The receiver starts an fdatasync of what it wrote each time this much more arrived, in a
# thread while the upload goes on, so the fsync before the acknowledgement finds little
# left to write: a 51 MB image's was ~35 ms, all of it after the last byte arrived.
SYNC_STEP = 8 * 1024 * 1024


class Body(Protocol):
    """An upload's body as it arrives: aiohttp's `request.content`, or the asyncio
    StreamReader the peer port feeds (node.transport.peerport), which ends at its EOF."""

    async def readexactly(self, n: int) -> bytes: ...

    async def read(self, n: int = -1) -> bytes: ...


class SnapshotError(Exception):
    """A snapshot upload could not be sent or was not received intact."""


class SnapshotRefused(SnapshotError):
    """The upload's MsgSnap is one no honest member sends (see node.transport.screen)."""


def snapshot_file_name(msg: Message) -> str:
    """etcd names a received db image after the snapshot index: <index hex, 16>.snap.db."""
    index = msg.snapshot.metadata.index if msg.snapshot is not None else 0
    return f"{index:016x}.snap.db"


def _read_crc(f: BinaryIO, chunk_size: int, crc: int) -> tuple[bytes, int]:
    """Worker thread: the next chunk and the checksum that includes it, off the loop."""
    chunk = f.read(chunk_size)
    return chunk, imagesum.default()(chunk, crc)


async def _read_chunks(
    source: str | bytes, chunk_size: int, size: int
) -> AsyncIterator[tuple[bytes, int]]:
    """The image's chunks, each with the checksum of the image up to and including it."""
    crc = 0
    if isinstance(source, bytes):
        view = memoryview(source)
        for at in range(0, len(source), chunk_size):
            chunk = bytes(view[at : at + chunk_size])
            crc = imagesum.default()(chunk, crc)
            yield chunk, crc
        return
    f: BinaryIO = await asyncio.to_thread(open, source, "rb")
    try:
        sent = 0
        while True:
            chunk, crc = await asyncio.to_thread(_read_crc, f, chunk_size, crc)
            if not chunk:
                break
            sent += len(chunk)
            if sent > size:
                break
            yield chunk, crc
        if sent != size:
            raise SnapshotError(f"{source} changed size while being sent ({size} -> {sent})")
    finally:
        await asyncio.to_thread(f.close)


async def send_snapshot(
    session: Callable[[], aiohttp.ClientSession],
    url: str,
    headers: dict[str, str],
    msg: Message,
    source: str | bytes,
    *,
    chunk_size: int,
    dial_timeout: float,
    response_timeout: float,
) -> int:
    """Upload one snapshot; return the body bytes sent. Raises SnapshotError on any failure.

    An image file to an http:// peer goes by `sendfile` (node.transport.sendfile); an
    in-memory image or a TLS peer through aiohttp's client, made by `session()`.
    """
    if isinstance(source, bytes):
        size = len(source)
    else:
        try:
            size = (await asyncio.to_thread(os.stat, source)).st_size
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot image: {exc}") from exc
    frame = encode(msg)
    total = len(frame) + size + _CRC.size
    request_headers = {
        **headers,
        wire.HDR_SNAPSHOT_SIZE: str(size),
        wire.HDR_SNAPSHOT_CHECKSUM: imagesum.DEFAULT,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(total),
    }
    address = sendfile.plain_address(url)
    if address is not None and isinstance(source, str):
        head = httphead.request("POST", wire.SNAPSHOT_PATH, sendfile.host(url), request_headers)
        try:
            status, text = await sendfile.upload(
                address,
                head + frame,
                source,
                size,
                dial_timeout=dial_timeout,
                response_timeout=response_timeout,
            )
        except OSError as exc:  # UploadFailed, refused, reset, timed out
            raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc
        _check_answer(status, text)
        return total
    await _send_with_aiohttp(
        session(),
        url,
        request_headers,
        frame,
        source,
        size,
        chunk_size,
        dial_timeout,
        response_timeout,
    )
    return total


def _check_answer(status: int, text: str) -> None:
    if status not in (200, 204):
        raise SnapshotError(f"receiver answered HTTP {status}: {text[:200]}")


async def _send_with_aiohttp(
    session: aiohttp.ClientSession,
    url: str,
    request_headers: dict[str, str],
    frame: bytes,
    source: str | bytes,
    size: int,
    chunk_size: int,
    dial_timeout: float,
    response_timeout: float,
) -> None:
    """The upload through aiohttp's client: the image read in chunks by a thread."""
    import aiohttp  # not needed before a snapshot is sent (httphead.py)

    async def body() -> AsyncIterator[bytes]:
        yield frame
        crc = 0
        async for chunk, running in _read_chunks(source, chunk_size, size):
            crc = running
            yield chunk
        yield _CRC.pack(crc)

    # sock_read runs from the first request byte (aiohttp), so it also bounds the upload.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=dial_timeout, sock_read=response_timeout
    )
    try:
        async with session.post(
            url + wire.SNAPSHOT_PATH, data=body(), headers=request_headers, timeout=timeout
        ) as resp:
            _check_answer(resp.status, (await resp.text()).strip())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc


def _write_all(f: BinaryIO, chunks: list[bytes], crc: int, checksum: imagesum.Checksum) -> int:
    """Worker thread: append `chunks`, return the checksum that includes them."""
    f.writelines(chunks)
    f.flush()  # in the file, for the early fdatasync (_EarlySync) to find
    for chunk in chunks:
        crc = checksum(chunk, crc)
    return crc


class _EarlySync:
    """fdatasyncs of a file being written, one at a time, each in a worker thread and
    awaited by nobody but `wait`: they overlap the upload instead of following it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._unsynced = 0
        self._task: asyncio.Future[None] | None = None

    def wrote(self, nbytes: int) -> None:
        """`nbytes` more are in the file; start a sync if a step's worth is and none runs."""
        self._unsynced += nbytes
        if self._unsynced >= SYNC_STEP and (self._task is None or self._task.done()):
            self._unsynced = 0
            self._task = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, self._fd))

    async def wait(self) -> None:
        """The sync in flight has ended; raises its error. NB: the final fsync may not
        see an error an earlier fdatasync of the same descriptor reported (Linux reports
        a writeback error once per open file), so it must fail the upload here."""
        if self._task is not None:
            await self._task


async def _copy_chunks(
    content: Body,
    f: BinaryIO,
    size: int,
    chunk_size: int,
    early: _EarlySync,
    checksum: imagesum.Checksum,
) -> int:
    """`size` bytes of `content` appended to `f`, a chunk's worth per thread hop; their
    checksum. Raises SnapshotError when the body ends first."""
    remaining = size
    crc = 0
    pending: list[bytes] = []
    pending_size = 0
    while remaining:
        data = await content.read(min(remaining, chunk_size))
        if not data:
            raise SnapshotError(f"upload truncated: {size - remaining} of {size} bytes")
        remaining -= len(data)
        pending.append(data)
        pending_size += len(data)
        if pending_size >= chunk_size:
            crc = await asyncio.to_thread(_write_all, f, pending, crc, checksum)
            early.wrote(pending_size)
            pending = []
            pending_size = 0
    if pending:
        crc = await asyncio.to_thread(_write_all, f, pending, crc, checksum)
    return crc


def _fsync_close(f: BinaryIO) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def _rename_durably(tmp: str, final: str) -> None:
    os.replace(tmp, final)
    fd = os.open(os.path.dirname(final) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must survive a crash
    finally:
        os.close(fd)


def _checksum_of(headers: Mapping[str, str]) -> imagesum.Checksum:
    """The checksum the upload's trailer is of; SnapshotError for a kind we do not know
    (said so, not reported later as a corrupt image)."""
    try:
        return imagesum.by_name(headers.get(wire.HDR_SNAPSHOT_CHECKSUM, imagesum.LEGACY))
    except imagesum.UnknownChecksum as exc:
        raise SnapshotError(str(exc)) from None


async def receive_snapshot(
    headers: Mapping[str, str],
    content: Body,
    snapshot_dir: str,
    *,
    chunk_size: int,
    max_frame: int,
    screen: Callable[[Message], str | None] | None = None,
) -> tuple[Message, str, int]:
    """Read one upload into `snapshot_dir`; return (MsgSnap, final path, body bytes read).

    `screen` sees the MsgSnap before any byte of the image is written: a reason it
    returns refuses the upload (SnapshotError), so a forged image never reaches the disk.
    """
    size_header = headers.get(wire.HDR_SNAPSHOT_SIZE, "")
    if not size_header.isdigit():
        raise SnapshotError(f"missing or bad {wire.HDR_SNAPSHOT_SIZE} header")
    size = int(size_header)
    checksum = _checksum_of(headers)
    try:
        (length,) = struct.unpack("<I", await content.readexactly(LENGTH_SIZE))
        if not 0 < length <= max_frame:
            raise SnapshotError(f"bad snapshot frame length {length}")
        body = await content.readexactly(length)
        msg = decode_body(body, 0, length)
    except asyncio.IncompleteReadError as exc:
        raise SnapshotError("upload ended inside the MsgSnap frame") from exc
    except CodecError as exc:
        raise SnapshotError(f"bad MsgSnap frame: {exc}") from exc
    if msg.type is not MessageType.MsgSnap or msg.snapshot is None:
        raise SnapshotError(f"expected MsgSnap with metadata, got {msg.type.name}")
    refused = screen(msg) if screen is not None else None
    if refused is not None:
        raise SnapshotRefused(f"refused: {refused}")

    await asyncio.to_thread(os.makedirs, snapshot_dir, exist_ok=True)
    final = os.path.join(snapshot_dir, snapshot_file_name(msg))
    tmp = os.path.join(
        snapshot_dir, f".{os.urandom(16).hex()}.snap.db.part"
    )  # not uuid: its import (platform) costs every start ~2 ms
    f: BinaryIO = await asyncio.to_thread(open, tmp, "wb")
    early = _EarlySync(f.fileno())
    closed = False
    try:
        copy_to = getattr(content, "copy_to", None)
        if copy_to is not None:  # the peer port's SocketBody: socket -> file in a thread
            copied, crc = await copy_to(f.fileno(), size, chunk_size, early.wrote, checksum)
            if copied != size:
                raise SnapshotError(f"upload truncated: {copied} of {size} bytes")
        else:
            crc = await _copy_chunks(content, f, size, chunk_size, early, checksum)
        try:
            (expected,) = _CRC.unpack(await content.readexactly(_CRC.size))
        except asyncio.IncompleteReadError as exc:
            raise SnapshotError("upload ended before the checksum trailer") from exc
        if expected != crc:
            raise SnapshotError(f"checksum mismatch: sent {expected:08x}, received {crc:08x}")
        if await content.read(1):
            raise SnapshotError("unexpected bytes after the checksum trailer")
        await early.wait()
        closed = True
        await asyncio.to_thread(_fsync_close, f)
        await asyncio.to_thread(_rename_durably, tmp, final)
    except BaseException:
        try:
            with contextlib.suppress(OSError):
                await early.wait()  # before the file (and its descriptor number) goes
        finally:
            if not closed:
                f.close()  # no fsync: the partial file is deleted next
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return msg, final, LENGTH_SIZE + length + size + _CRC.size
