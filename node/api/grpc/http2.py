"""gRPC's HTTP/2, served on the member's event loop at a fraction of a general server's cost.

Measured inside a member (64 callers, serializable gets, one member, py-spy): grpclib's
server spent ~270 us of CPU per call, 85% of it in its general HTTP/2 machinery
(h2's stream state machines, header validation, an encoder per connection, three
writes per call), where etcd's whole server spends ~95 us. gRPC needs little of
HTTP/2: every request is a POST of length-prefixed messages, every answer the same
headers, messages and a status trailer. This protocol does exactly that:
- frames parsed with one struct call each; request headers decoded by `hpack`'s
  decoder (the one stateful part of HTTP/2 a client forces on a server);
- answers' header blocks use only HPACK's static table and literals that never enter
  the dynamic table, so they are encoded once, up front, and never need an encoder;
- flow control both ways: the peer's windows are respected for every DATA frame we
  send (large ranges and snapshots wait for WINDOW_UPDATE), and a stream's window is
  credited back only while its handler keeps up, so a client flooding a stream is
  slowed by HTTP/2 itself rather than buffered without bound;
- a finished call's frames leave at once, in one write; stream messages and
  connection frames of one loop turn leave together. When the server answers many
  calls at once (an apply batch resolves their proposals), an `AnswerBatch` holds the
  answers that wake-up finishes and writes each connection's in one write, in the same
  loop turn: under load a connection carries several calls a batch, and a write to a
  loopback socket (the receiver's TCP work included) was ~15-20% of a member's busy time.
A method handler sees a `GrpcStream`: `recv_message()`, `async for`, `send_message()`;
raising `GrpcFailure` ends the call with that status.
"""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import struct
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from hpack import Decoder
from hpack.exceptions import HPACKError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types and flags (RFC 9113 section 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
# settings identifiers
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 0x3, 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
# error codes
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x0, 0x1, 0x3, 0x6
CANCEL, ENHANCE_YOUR_CALM = 0x8, 0xB

FRAME_HEADER = struct.Struct(">HBBBI")  # 24-bit length as 16+8 bits, type, flags, stream id
MESSAGE_PREFIX = struct.Struct(">BI")  # gRPC: compressed flag, message length
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
STREAM_WINDOW = 1 << 20  # what each stream may send before we read it
CONNECTION_WINDOW = 16 << 20  # and all streams of a connection together
QUEUED_MESSAGES = 16  # a stream's unread messages before its window stops being credited
MAX_STREAMS = 4096  # concurrent streams per connection (etcd's clients use a few)
# the request metadata a handler may read: etcd's rpctypes keys (clientv3 WithRequireLeader)
METADATA_KEPT = frozenset({b"hasleader"})
DECODED_BLOCKS = 64  # distinct all-indexed header blocks remembered per connection


class GrpcFailure(Exception):
    """Ends a call with gRPC status `code` and `message` (the trailers say so)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Method:
    """One gRPC method: how its messages decode and what serves it."""

    request_type: Any  # a protobuf message class
    handler: Callable[[GrpcStream], Awaitable[None]]
    client_streaming: bool = False


# ---- HPACK, the encoding side: static table and literals only ------------------------------
def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    """A header as a literal never added to the dynamic table (RFC 7541 6.2.2), no Huffman."""
    return b"\x00" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0) + value


_STATUS_200 = b"\x88"  # static table entry 8, ":status: 200"
_CONTENT_TYPE = b"\x0f\x10" + _hpack_int(16, 7, 0) + b"application/grpc"  # name: static 31
RESPONSE_HEADERS = _STATUS_200 + _CONTENT_TYPE
OK_TRAILERS = _literal(b"grpc-status", b"0")
# A unary answer whose reply fits the windows, framed with two packs: HEADERS (the response
# headers), the DATA frame's header and the message prefix; then the payload; then the trailers.
ANSWER_HEAD = struct.Struct(f">HBBBI{len(RESPONSE_HEADERS)}sHBBBIBI")
ANSWER_TAIL = struct.Struct(f">HBBBI{len(OK_TRAILERS)}s")


def _percent_encode(message: str) -> bytes:
    """grpc-message's encoding: printable ASCII except '%' as is, every other byte %XX."""
    out = bytearray()
    for byte in message.encode()[:8192]:
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def status_block(code: int, message: str) -> bytes:
    block = _literal(b"grpc-status", str(code).encode())
    if message:
        block += _literal(b"grpc-message", _percent_encode(message))
    return block


# ---- one stream ----------------------------------------------------------------------------
class GrpcStream:
    """One call, as its handler sees it."""

    __slots__ = (
        "_conn",
        "_credit_owed",
        "_messages",
        "_waiter",
        "buffer",
        "ended",
        "headers_sent",
        "id",
        "metadata",
        "method",
        "send_window",
        "task",
        "window_open",
    )

    def __init__(
        self,
        conn: GrpcConnection,
        stream_id: int,
        method: Method,
        metadata: dict[bytes, bytes] | None = None,
    ) -> None:
        self._conn = conn
        self.id = stream_id
        self.method = method
        self.metadata = metadata or {}  # the request's custom headers (gRPC metadata)
        self.buffer = bytearray()  # DATA bytes not yet a whole message
        self._messages: deque[Any] = deque()  # decoded messages (or the error to raise)
        self._waiter: asyncio.Future[None] | None = None
        self._credit_owed = 0  # received bytes not yet credited back (the handler lags)
        self.ended = False  # the client's side is closed
        self.headers_sent = False
        self.send_window = conn.peer_initial_window
        self.window_open: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    # called by the connection
    def received(self, data: bytes, nbytes: int, end: bool) -> None:
        if data:
            self.buffer += data
            self._split_messages()
        if end:
            self.ended = True
        if nbytes:
            if len(self._messages) < QUEUED_MESSAGES and not end:
                self._conn.credit(self.id, nbytes)
            elif not end:
                self._credit_owed += nbytes
        if self.task is None and (self._messages or self.ended):
            self._conn.start(self)  # a one-request call starts once its request is here
        self._wake()

    def _split_messages(self) -> None:
        buf = self.buffer
        codec_limit = self._conn.limit
        while len(buf) >= 5:
            compressed, length = MESSAGE_PREFIX.unpack_from(buf)
            if length > codec_limit:
                self._messages.append(self._conn.too_large(length))
                buf.clear()
                return
            if len(buf) < 5 + length:
                return
            payload = bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            if compressed:
                self._messages.append(
                    GrpcFailure(12, "grpc: compressed messages are not supported")
                )
                continue
            try:
                self._messages.append(self.method.request_type.FromString(payload))
            except Exception:
                self._messages.append(
                    GrpcFailure(13, "grpc: error unmarshalling request: cannot parse message")
                )

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the handler's side
    async def recv_message(self) -> Any:
        """The next request message; None once the client has ended its side."""
        while not self._messages:
            if self.ended:
                if self.buffer:
                    raise GrpcFailure(13, "grpc: the client ended the stream inside a message")
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._messages.popleft()
        if self._credit_owed and len(self._messages) < QUEUED_MESSAGES // 2:
            self._conn.credit(self.id, self._credit_owed)
            self._credit_owed = 0
        if isinstance(message, Exception):
            raise message
        return message

    def __aiter__(self) -> GrpcStream:
        return self

    async def __anext__(self) -> Any:
        message = await self.recv_message()
        if message is None:
            raise StopAsyncIteration
        return message

    def finish(self) -> None:
        """End the call now with status OK: the reply and the trailers leave in one write."""
        self._conn.finish(self)

    async def send_message(self, message: Any) -> int:
        """Send one reply; waits while the client's windows or the socket are full.

        Returns the message's size (what the metrics count), so no one serializes twice.
        """
        payload = message.SerializeToString()
        await self.send_payload(payload)
        return len(payload)

    async def send_payload(self, payload: bytes) -> None:
        """Send one serialized reply (as `send_message`)."""
        await self._conn.send_data(self, MESSAGE_PREFIX.pack(0, len(payload)) + payload)

    def answer(self, payload: bytes) -> bool:
        """End a call with its only reply and status OK, now, if that needs no waiting.

        False (nothing sent) when the reply must wait for the client's windows or the
        socket, or headers already left: then `send_payload` and `finish` do it. A unary
        call's answer is three frames built with two struct packs and written at once,
        instead of frames queued one by one behind a scheduled flush.
        """
        return self._conn.answer(self, payload)


# ---- answers of one wake-up --------------------------------------------------------------------
class AnswerBatch:
    """Gathers the calls finished by one wake-up of many handlers into one write per connection.

    Whoever wakes many handlers at once (the server resolving an apply batch's proposals)
    calls `open()` right after: the handlers' tasks were queued on the loop first, so the
    `_close` queued here runs after every one of them, in the same loop turn. Until then a
    finished call's frames wait in its connection's buffer instead of leaving one write
    each; `_close` writes every such connection once, in the order they finished. A call
    finished while no wake-up is open leaves at once, as before. Nothing waits past the
    turn the handlers run in, so an answer is never held behind a Raft turn or an fsync.
    """

    __slots__ = ("_dirty", "_pending")

    def __init__(self) -> None:
        self._pending = 0  # `_close` callbacks queued; open while any is
        self._dirty: dict[GrpcConnection, None] = {}  # connections with held answers, in order

    @property
    def opened(self) -> bool:
        return self._pending > 0

    def open(self) -> None:
        """Hold finished calls until the handlers woken so far have run."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # woken off the loop: nothing to gather, calls leave at once
            return
        self._pending += 1
        loop.call_soon(self._close)

    def hold(self, conn: GrpcConnection) -> None:
        self._dirty[conn] = None

    def _close(self) -> None:
        self._pending -= 1
        dirty, self._dirty = self._dirty, {}
        for conn in dirty:
            conn.flush()


# ---- one connection -------------------------------------------------------------------------
class GrpcConnection(asyncio.Protocol):
    """One client's HTTP/2 connection carrying gRPC calls."""

    def __init__(
        self,
        methods: dict[bytes, Method],
        limit: int,
        too_large: Callable[[int], Exception],
        on_close: Callable[[GrpcConnection], None] | None = None,
        batch: AnswerBatch | None = None,
    ) -> None:
        self._methods = methods
        self._batch = batch  # when set, answers of one wake-up leave in one write
        self.limit = limit  # longest request message accepted
        self.too_large = too_large  # the error a longer one answers
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._inbox = bytearray()
        self._preface_seen = False
        self._decoder = Decoder()
        # all-indexed header block -> its headers, valid while the dynamic table is unchanged
        self._decoded: dict[bytes, RequestHead] = {}
        self._streams: dict[int, GrpcStream] = {}
        self._header_block: tuple[int, int, bytearray] | None = None  # (stream, flags, block)
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_event_loop()
        self.peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._send_window = DEFAULT_WINDOW  # the connection's, for DATA we send
        self._conn_credit_owed = 0
        self._blocked: deque[GrpcStream] = deque()  # streams waiting for window
        self._paused: asyncio.Future[None] | None = None  # the socket's buffer is full
        self._closed = False
        self._last_stream = 0

    # ---- asyncio protocol ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        settings = struct.pack(
            ">HIHI",
            SETTINGS_INITIAL_WINDOW_SIZE,
            STREAM_WINDOW,
            SETTINGS_MAX_CONCURRENT_STREAMS,
            MAX_STREAMS,
        )
        self._frame(SETTINGS, 0, 0, settings)
        self._frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", CONNECTION_WINDOW - DEFAULT_WINDOW))

    def data_received(self, data: bytes) -> None:
        inbox = self._inbox
        if inbox or not self._preface_seen:
            inbox += data
            if not self._preface_seen and not self._preface(inbox):
                return
            del inbox[: self._frames(inbox)]
            return
        # the usual case: nothing left over, so frames are sliced out of `data` uncopied
        offset = self._frames(data)
        if offset < len(data):
            inbox += data[offset:]

    def _preface(self, inbox: bytearray) -> bool:
        """Whether the client's preface has been read (and dropped from `inbox`)."""
        if len(inbox) < len(PREFACE):
            return False
        if inbox[: len(PREFACE)] != PREFACE:
            self._fail(PROTOCOL_ERROR)
            return False
        del inbox[: len(PREFACE)]
        self._preface_seen = True
        return True

    def _frames(self, buf: bytes | bytearray) -> int:
        """Handle every whole frame in `buf`; the offset where the first partial one starts."""
        offset = 0
        size = len(buf)
        while size - offset >= 9 and not self._closed:
            hi, lo, kind, flags, stream_id = FRAME_HEADER.unpack_from(buf, offset)
            length = (hi << 8) | lo
            if length > DEFAULT_MAX_FRAME:
                self._fail(FRAME_SIZE_ERROR)
                return size
            if size - offset < 9 + length:
                break
            end = offset + 9 + length
            # a bytearray's slice is copied, as trimming it later must not change the frame
            payload = (
                bytes(buf[offset + 9 : end])
                if isinstance(buf, bytearray)
                else buf[offset + 9 : end]
            )
            offset = end
            self._on_frame(kind, flags, stream_id & 0x7FFFFFFF, payload)
        return offset

    def pause_writing(self) -> None:
        if self._paused is None:
            self._paused = self._loop.create_future()

    def resume_writing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for stream in list(self._streams.values()):
            self._cancel(stream)
        self._streams.clear()
        self.resume_writing()
        for stream in self._blocked:
            _release(stream)
        self._blocked.clear()
        if self._on_close is not None:
            self._on_close(self)

    def close(self) -> None:
        """Say goodbye (GOAWAY) and end every call, as a server shutting down does."""
        if self._transport is not None and not self._closed:
            self._frame(GOAWAY, 0, 0, struct.pack(">II", self._last_stream, NO_ERROR))
            self._flush()
            self._transport.close()

    # ---- frames in ----
    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._header_block is not None and kind != CONTINUATION:
            self._fail(PROTOCOL_ERROR)  # a header block must not be interrupted
            return
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._on_settings(payload)
        elif kind == PING:
            if not flags & ACK and len(payload) == 8:
                self._frame(PING, ACK, 0, payload)
        elif kind == RST_STREAM:
            stream = self._streams.pop(stream_id, None)
            if stream is not None:
                self._cancel(stream)
        elif kind == GOAWAY:
            pass  # the client stops opening streams; those open finish
        elif kind == PUSH_PROMISE:
            self._fail(PROTOCOL_ERROR)  # clients never push
        # PRIORITY and unknown frame types are ignored, as RFC 9113 requires

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        nbytes = len(payload)
        self._conn_credit_owed += nbytes
        if self._conn_credit_owed >= CONNECTION_WINDOW // 4:
            self._frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self._conn_credit_owed))
            self._conn_credit_owed = 0
        if flags & PADDED and payload:
            pad = payload[0]
            payload = payload[1 : len(payload) - pad]
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended:
            return  # a stream we already answered or reset: its bytes are dropped
        stream.received(payload, nbytes, bool(flags & END_STREAM))

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if flags & PADDED and payload:
            pad = payload[0]
            payload = payload[1 : len(payload) - pad]
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        if flags & END_HEADERS:
            self._on_header_block(stream_id, flags, payload)
        else:
            self._header_block = (stream_id, flags, bytearray(payload))

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        pending = self._header_block
        if pending is None or pending[0] != stream_id:
            self._fail(PROTOCOL_ERROR)
            return
        pending[2].extend(payload)
        if len(pending[2]) > 1 << 20:
            self._fail(ENHANCE_YOUR_CALM)
            return
        if flags & END_HEADERS:
            self._header_block = None
            self._on_header_block(stream_id, pending[1], bytes(pending[2]))

    def _decode_headers(self, block: bytes) -> RequestHead:
        """What a call needs of `block`, decoded once per distinct block while it means the same.

        A client repeating a call sends, after its first, a block made only of indexed
        fields (each byte >= 0x80, RFC 7541 6.1: a 1-byte index); such a block never
        changes the decoder's dynamic table, so while the table is unchanged the same
        bytes decode to the same list. Any other block may change the table, so it
        empties the cache. Saves the decode (~20 µs, most of a call's parsing) per call,
        and the walk over its headers for the path and the metadata kept.
        """
        cache = self._decoded
        cached = cache.get(block)
        if cached is not None:
            return cached
        all_indexed = min(block, default=0) > 0x80  # 0x80 alone is index 0: an error
        if not all_indexed:
            cache.clear()
        head = _request_head(self._decoder.decode(block, raw=True))
        if all_indexed:
            if len(cache) >= DECODED_BLOCKS:
                cache.clear()
            cache[block] = head
        return head

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:
            path, metadata = self._decode_headers(block)
        except HPACKError:
            self._fail(0x9)  # COMPRESSION_ERROR: the decoder's state is lost
            return
        existing = self._streams.get(stream_id)
        if existing is not None:  # trailers from the client: only END_STREAM matters
            existing.received(b"", 0, bool(flags & END_STREAM))
            return
        if stream_id % 2 == 0:
            self._fail(PROTOCOL_ERROR)  # only clients open streams here, with odd ids
            return
        if stream_id <= self._last_stream:
            return  # headers for a stream already answered (or reset): nothing to do
        self._last_stream = stream_id
        method = self._methods.get(path)
        if method is None:
            self._trailers_only(stream_id, 12, self._unknown(path))
            return
        if len(self._streams) >= MAX_STREAMS:
            self._frame(RST_STREAM, 0, stream_id, struct.pack(">I", 0x7))  # REFUSED_STREAM
            return
        stream = GrpcStream(self, stream_id, method, dict(metadata) if metadata else None)
        self._streams[stream_id] = stream
        if flags & END_STREAM:
            stream.ended = True
        if method.client_streaming or stream.ended:
            self.start(stream)
        # else a call of one request starts when its request (or its end) arrives: run at
        # once then, it goes as far as it can (a put: to its proposal) before suspending

    def start(self, stream: GrpcStream) -> None:
        """Run a call's handler: now, until it first suspends, and on in a task if it does.

        Python 3.12's eager tasks, by hand: most unary calls were a task created, queued
        and run a loop turn later; now the handler runs inside the frame that completed
        its request, and a call served without waiting (a serializable read, a refusal)
        never becomes a task at all.
        """
        if stream.method.client_streaming:  # it waits for messages at once: a task as ever
            stream.task = self._loop.create_task(self._run(stream))
            return
        coro = self._run(stream)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        stream.task = self._loop.create_task(_Resumed(coro, waiting_on))

    def _unknown(self, path: bytes) -> str:
        """grpc-go's words for a path no method serves."""
        service, _, name = path.decode(errors="replace").lstrip("/").partition("/")
        prefix = f"/{service}/".encode()
        if any(p.startswith(prefix) for p in self._methods):
            return f"unknown method {name} for service {service}"
        return f"unknown service {service}"

    def _on_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - len(payload) % 6, 6):
            ident, value = struct.unpack_from(">HI", payload, i)
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > 0x7FFFFFFF:
                    self._fail(FLOW_CONTROL_ERROR)
                    return
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                self._peer_max_frame = max(DEFAULT_MAX_FRAME, min(value, (1 << 24) - 1))
        self._frame(SETTINGS, ACK, 0, b"")
        self._unblock()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            self._fail(FRAME_SIZE_ERROR)
            return
        increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            self._send_window += increment
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                return
            stream.send_window += increment
        if self._blocked:
            self._unblock()

    # ---- calls ----
    async def _run(self, stream: GrpcStream) -> None:
        code, message = 0, ""
        try:
            await stream.method.handler(stream)
        except GrpcFailure as failure:
            code, message = failure.code, failure.message
        except asyncio.CancelledError:
            return  # the client reset the stream, or the connection is gone: nothing to say
        except Exception:
            log.exception("gRPC handler failed")
            code, message = 13, "internal error"
        self.finish(stream, code, message)

    def finish(self, stream: GrpcStream, code: int = 0, message: str = "") -> None:
        """End the call with its status and write it out now (once; later calls do nothing).

        A unary handler ends its call as soon as its reply is queued, so the answer
        leaves before the call's metrics are recorded; `_run` ends every other call.
        """
        if self._closed or self._streams.get(stream.id) is not stream:
            return
        del self._streams[stream.id]
        if not stream.headers_sent:
            self._trailers_only(stream.id, code, message)
        else:
            block = OK_TRAILERS if code == 0 else status_block(code, message)
            self._frame(HEADERS, END_HEADERS | END_STREAM, stream.id, block)
        self._send_off(stream)

    def answer(self, stream: GrpcStream, payload: bytes) -> bool:
        """`GrpcStream.answer`: reply and status OK packed at once; False if they must wait."""
        size = len(payload) + 5
        if (
            stream.headers_sent
            or self._paused is not None
            or size > min(self._send_window, stream.send_window, self._peer_max_frame)
            or self._closed
            or self._streams.get(stream.id) is not stream
        ):
            return False
        del self._streams[stream.id]
        stream.headers_sent = True
        self._send_window -= size
        stream.send_window -= size
        sid = stream.id
        head_len = len(RESPONSE_HEADERS)
        self._out += (
            ANSWER_HEAD.pack(
                0,
                head_len,
                HEADERS,
                END_HEADERS,
                sid,
                RESPONSE_HEADERS,
                size >> 8,
                size & 0xFF,
                DATA,
                0,
                sid,
                0,
                len(payload),
            ),
            payload,
            ANSWER_TAIL.pack(
                0, len(OK_TRAILERS), HEADERS, END_HEADERS | END_STREAM, sid, OK_TRAILERS
            ),
        )
        self._send_off(stream)
        return True

    def _send_off(self, stream: GrpcStream) -> None:
        """A finished call's frames are queued: reset its client's side if still open, write."""
        if not stream.ended:
            # the call is over while the client still sends: tell it to stop (grpc-go does)
            self._frame(RST_STREAM, 0, stream.id, struct.pack(">I", NO_ERROR))
        # A finished call leaves now, in one write: waiting for the scheduled flush would put
        # it behind whatever the loop runs next (a Raft turn, an on-loop fsync). Inside a
        # wake-up of many handlers it leaves with the others of its connection, at the
        # end of that wake-up (AnswerBatch), still in this loop turn.
        batch = self._batch
        if batch is not None and batch.opened:
            batch.hold(self)
        else:
            self._flush()

    def _trailers_only(self, stream_id: int, code: int, message: str) -> None:
        block = RESPONSE_HEADERS + status_block(code, message)
        self._frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block)

    def _cancel(self, stream: GrpcStream) -> None:
        stream.ended = True
        if stream.task is not None and not stream.task.done():
            stream.task.cancel()
        _release(stream)

    def credit(self, stream_id: int, nbytes: int) -> None:
        """Give a stream back the window its consumed bytes took."""
        if not self._closed and stream_id in self._streams:
            self._frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", nbytes))

    # ---- frames out ----
    async def send_data(self, stream: GrpcStream, data: bytes) -> None:
        """Queue one message's bytes as DATA frames, within the peer's windows."""
        if not stream.headers_sent:
            stream.headers_sent = True
            self._frame(HEADERS, END_HEADERS, stream.id, RESPONSE_HEADERS)
        view = memoryview(data)
        while view:
            if self._closed or self._streams.get(stream.id) is not stream:
                raise asyncio.CancelledError  # the client is gone
            room = min(self._send_window, stream.send_window, self._peer_max_frame)
            if room <= 0:
                await self._window(stream)
                continue
            chunk = view[:room]
            view = view[room:]
            self._send_window -= len(chunk)
            stream.send_window -= len(chunk)
            self._frame(DATA, 0, stream.id, bytes(chunk))
        if self._paused is not None:
            await self._paused

    async def _window(self, stream: GrpcStream) -> None:
        stream.window_open = self._loop.create_future()
        self._blocked.append(stream)
        self._flush()
        await stream.window_open

    def _unblock(self) -> None:
        while self._blocked and self._send_window > 0:
            stream = self._blocked.popleft()
            if stream.send_window > 0:
                _release(stream)
            else:
                self._blocked.append(stream)
                if all(s.send_window <= 0 for s in self._blocked):
                    break

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        n = len(payload)
        self._out.append(FRAME_HEADER.pack(n >> 8, n & 0xFF, kind, flags, stream_id))
        if payload:
            self._out.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Write everything queued now, in one write."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and not self._closed:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def _fail(self, error: int) -> None:
        """A connection error: GOAWAY with its code, then close (RFC 9113 5.4.1)."""
        if self._closed or self._transport is None:
            return
        self._frame(GOAWAY, 0, 0, struct.pack(">II", self._last_stream, error))
        self._flush()
        self._closed = True
        self._transport.close()


RequestHead = tuple[bytes, dict[bytes, bytes]]  # a call's path and the metadata kept


def _request_head(headers: Any) -> RequestHead:
    """The path and the kept metadata of a request's (name, value) header pairs."""
    path = b""
    metadata: dict[bytes, bytes] = {}
    for name, value in headers:
        if name == b":path":
            path = value
        elif name in METADATA_KEPT:
            metadata[name] = value
    return path, metadata


class _Resumed(collections.abc.Coroutine[Any, Any, None]):
    """A coroutine already run to its first suspension, as a task can take it on.

    The task's first step gets the future the coroutine is waiting on (what the coroutine
    yielded then); every later step and every exception (a cancellation, even one before
    that first step) goes to the coroutine itself, so the task behaves as if it had
    started it. A generator cannot do this: a cancellation thrown in before its first
    step would end it without reaching the coroutine.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._first: list[Any] = [waiting_on]

    def send(self, value: Any) -> Any:
        if self._first:
            return self._first.pop()
        return self._coro.send(value)

    def throw(self, *exc: Any) -> Any:
        self._first.clear()
        return self._coro.throw(*exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        raise TypeError("a resumed call is run by its task, not awaited")


def _release(stream: GrpcStream) -> None:
    waiter = stream.window_open
    stream.window_open = None
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
