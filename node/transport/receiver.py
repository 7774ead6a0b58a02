"""The inbound side: peer streams, RTT probes and snapshot uploads.

A member's peer port hands stream requests, upgraded probes and snapshot uploads to this
receiver on plain asyncio (`open_raw_stream`, `answer_raw_probe`, `receive_raw_snapshot`;
see httphead.py for why), and everything else to aiohttp, whose handlers are here too
(`add_routes`; a stream request or upload that reaches aiohttp, e.g. on a kept-alive
connection, is served the same way).

A stream handler admits the sender, answers 101 Switching Protocols, and gives the
upgraded connection a `_StreamParser`, the way aiohttp hands a WebSocket to its frame
reader: from then on aiohttp's `data_received` passes each chunk of bytes straight to
the parser, which decodes frames and hands the messages to the driver in the same call.
No task wakes up per chunk; the handler only waits for the stream to end or go silent.
One inbound stream per peer, so two connections never interleave one peer's messages.
A second stream claiming a member whose stream delivered a frame within the takeover
window (an election timeout) is refused with 409: without it, anyone who can reach the
port could displace a live member's stream by claiming its id. A stream silent for longer
is presumed dead (a restarted or partitioned member) and the newcomer replaces it.

Every decoded message is screened (`screen.refusal`) before the driver sees it: it must
come from the member the stream was admitted as, be addressed to us, and carry terms and
indexes this member can always encode. A message that fails is dropped and counted; a
frame that does not decode closes that stream only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from node.transport import httphead, screen, wire
from node.transport.codec import CodecError, FrameDecoder
from node.transport.prober import ProbeHelper, plain_socket
from node.transport.snapshot import SnapshotRefused, receive_snapshot
from node.transport.stats import (
    NO_FAULT,
    REFUSED_CLUSTER,
    REFUSED_IN_USE,
    REFUSED_PROTOCOL,
    REFUSED_RECIPIENT,
    REFUSED_SENDER,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from aiohttp import web

    from node.raft.messages import Message
    from node.transport.local import LocalMember
    from node.transport.snapshot import Body
    from node.transport.stats import PeerFault, PeerStats

log = logging.getLogger(__name__)


class Refusal:
    """A refused peer request: the status and text to answer it with."""

    __slots__ = ("headers", "status", "text")

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.text = text
        self.headers = headers or {}


def _as_response(refusal: Refusal) -> web.Response:
    from aiohttp import web  # only once aiohttp serves (module doc)

    return web.Response(status=refusal.status, text=refusal.text, headers=refusal.headers or None)


def remote_host(transport: asyncio.BaseTransport) -> str | None:
    """The peer's IP, as aiohttp's `request.remote` gives it."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else None


class _Inbound:
    """One open inbound stream; `closing` marks a close we asked for (not a failure)."""

    __slots__ = ("closing", "remote", "stream", "transport")

    def __init__(
        self, transport: asyncio.BaseTransport | None, remote: str | None, stream: _StreamParser
    ) -> None:
        self.transport = transport
        self.stream = stream
        self.remote = remote  # the peer's IP: a snapshot claiming it must match
        self.closing = False

    def live(self, now: float, window: float) -> bool:
        """Delivered a frame (a keep-alive counts) within `window` seconds."""
        return not self.stream.done.done() and now - self.stream.last_data < window

    def close(self) -> None:
        self.closing = True
        transport = self.transport
        if transport is not None:
            # Ends the body read in the handler (connection_lost), which then returns.
            transport.close()


@dataclass(slots=True, eq=False)
class _StreamParser:
    """Decodes an upgraded stream inside aiohttp's `data_received`; `done` ends the stream.

    aiohttp calls `feed_data` with every chunk and `feed_eof` when the connection is
    lost. The parser keeps the time of the last chunk for the handler's idle check.
    """

    _decoder: FrameDecoder
    _deliver: Callable[[Message], None]
    _screen: Callable[[Message], str | None]
    _stats: PeerStats
    _loop: asyncio.AbstractEventLoop
    _fields: dict[str, str]
    done: asyncio.Future[None] = field(init=False)
    last_data: float = field(init=False)
    why: str = field(init=False, default="peer closed the stream")
    failed: bool = field(init=False, default=False)
    refused: int = field(init=False, default=0)  # messages of this stream dropped by the screen

    def __post_init__(self) -> None:
        self.done = self._loop.create_future()
        self.last_data = self._loop.time()

    def finish(self, why: str, *, failed: bool) -> None:
        if not self.done.done():
            self.why, self.failed = why, failed
            self.done.set_result(None)

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """aiohttp's parser interface: (True, tail) tells it to close the connection."""
        if self.done.done():
            return True, b""
        self.last_data = self._loop.time()
        stats = self._stats
        stats.received_bytes += len(data)
        try:
            msgs = self._decoder.feed(data)
        except CodecError as exc:
            self.finish(f"corrupt frame: {exc}", failed=True)
            return True, b""
        except Exception as exc:  # never raise into aiohttp's protocol: close this stream
            self.finish(f"undecodable frame: {type(exc).__name__}: {exc}", failed=True)
            return True, b""
        stats.messages_received += len(msgs)
        deliver = self._deliver
        screen = self._screen
        for msg in msgs:
            why = screen(msg)
            if why is None:
                deliver(msg)
            else:
                self._refuse(msg, why)
        return False, b""

    def _refuse(self, msg: Message, why: str) -> None:
        # etcd counts a message its stream reader drops in received_failures{From}, too.
        self._stats.messages_refused += 1
        self._stats.receive_failures += 1
        self.refused += 1
        log.log(
            logging.WARNING if self.refused == 1 else logging.DEBUG,
            "dropped peer message no member sends remote-peer-id=%s type=%s term=%d reason=%r",
            self._fields["remote-peer-id"],
            msg.type.name,
            msg.term,
            why,
            extra={"fields": {**self._fields, "type": msg.type.name, "reason": why}},
        )

    def feed_eof(self) -> None:
        if self._decoder.buffered:
            self.finish("stream ended inside a frame", failed=True)
        else:
            self.finish("peer closed the stream", failed=False)


class _RawStream(asyncio.Protocol):
    """An upgraded inbound stream on plain asyncio: every chunk straight to its parser."""

    __slots__ = ("_parser", "_transport")

    def __init__(self, parser: _StreamParser, transport: asyncio.BaseTransport) -> None:
        self._parser = parser
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        close, _ = self._parser.feed_data(data)
        if close:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return None  # the sender finished: close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self._parser.feed_eof()


class Receiver:
    """Serves /raft/stream, /raft/probing and /raft/snapshot for one member."""

    def __init__(
        self,
        local: LocalMember,
        *,
        stats: dict[int, PeerStats],
        snapshot_dir: str,
        deliver: Callable[[Message], None],
        deliver_snapshot: Callable[[Message, str], Awaitable[None]],
        outbound_fault: Callable[[int], PeerFault],
        takeover_after: float | None = None,
        on_stream_accepted: Callable[[int], None] | None = None,
    ) -> None:
        self._on_stream_accepted = on_stream_accepted  # a peer's stream to us was accepted
        self._local_id = local.member_id
        self._cluster_id = local.cluster_id
        self._stats = stats
        self._opts = options = local.options
        heartbeat_interval = local.heartbeat_interval
        self._idle_timeout = options.idle(heartbeat_interval)
        # A member's inbound stream that delivered a frame within this window is live: a
        # second stream claiming that member is refused. Default: etcd's 10 heartbeats per
        # election timeout; never under two keep-alive intervals, or a healthy stream
        # between keep-alives could look dead.
        window = takeover_after if takeover_after is not None else 10 * heartbeat_interval
        self._takeover_after = max(window, 2 * options.keepalive(heartbeat_interval))
        self._snapshot_dir = snapshot_dir
        self._deliver = deliver
        self._deliver_snapshot = deliver_snapshot
        self._observer = local.observer
        self._outbound_fault = outbound_fault
        self._inbound: dict[int, _Inbound] = {}
        self._snapshot_tasks: set[asyncio.Task[object]] = set()
        # Streams and snapshot uploads accepted on plain asyncio (the peer port's).
        self._raw_tasks: set[asyncio.Task[Any]] = set()
        self._upgraded = {
            "Connection": "Upgrade",
            "Upgrade": wire.STREAM_UPGRADE,
            wire.HDR_FROM: wire.id_hex(local.member_id),
        }
        self.probe_helper: ProbeHelper | None = None  # answers upgraded probes (prober.py)
        self.running = False
        self.removed: set[int] = set()  # members removed from the cluster: refused with 410
        self._log_fields = {"local-member-id": wire.id_hex(local.member_id)}

    def add_routes(self, app: web.Application) -> None:
        """The aiohttp side: every peer request the peer port does not take itself."""
        app.router.add_get(wire.STREAM_PATH, self._handle_stream)
        app.router.add_get(wire.PROBING_PATH, self._handle_probing)
        app.router.add_post(wire.SNAPSHOT_PATH, self._handle_snapshot)
        # aiohttp waits for running handlers before cleanup_ctx runs; open streams never
        # end by themselves, so close them when the application starts shutting down.
        app.on_shutdown.append(self._on_app_shutdown)

    async def _on_app_shutdown(self, _app: web.Application) -> None:
        # Refuse new streams too: a peer may redial over a kept-alive connection (its
        # prober's) after the listening socket closed, and aiohttp would wait for it.
        self.running = False
        self.close_all()

    def close_peer(self, peer_id: int) -> None:
        """Close `peer_id`'s inbound stream (it was removed from the cluster)."""
        inbound = self._inbound.get(peer_id)
        if inbound is not None:
            inbound.close()

    def close_all(self) -> None:
        """Close every inbound stream and abort snapshot uploads in progress."""
        for inbound in list(self._inbound.values()):
            inbound.close()
        for task in list(self._snapshot_tasks):
            task.cancel()

    async def streams_ended(self, seconds: float) -> None:
        """Wait (at most `seconds`) for the streams and uploads accepted on plain asyncio
        to be accounted for once closed: their tasks outlive no transport."""
        tasks = list(self._raw_tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=seconds)
            for task in pending:
                task.cancel()

    # ------------------------------------------------------------------------- admission

    def _refuse(
        self,
        headers: Mapping[str, str],
        remote: str | None,
        what: str,
        reason: str,
        status: int,
        text: str,
        **fields: str,
    ) -> Refusal:
        """Log (key=value fields), count (observer) and answer one refused peer request."""
        fields = {
            **self._log_fields,
            "remote-peer-id": headers.get(wire.HDR_FROM, "?"),
            "remote-addr": str(remote),
            "reason": reason,
            **fields,
        }
        log.log(
            logging.ERROR if status == 412 else logging.WARNING,
            "rejected peer %s: %s %s",
            what,
            text,
            " ".join(f"{k}={v}" for k, v in fields.items() if k != "local-member-id"),
            extra={"fields": fields},
        )
        try:
            self._observer().on_peer_refused(reason)
        except Exception:
            log.exception("peer refusal observer failed")
        return Refusal(status, text)

    def _admit(
        self, headers: Mapping[str, str], remote: str | None, what: str
    ) -> tuple[int, Refusal | None]:
        """The sender's id, or an error response refusing the request (logged, counted).

        As etcd's rafthttp: another protocol version, another cluster id or another
        recipient is a 412 (a misconfiguration an operator must fix); a sender that is not
        a member of this cluster is a 404 ("error sender not found").
        """
        if not self.running:
            return 0, Refusal(503, "peer transport is not running")
        protocol = headers.get(wire.HDR_PROTOCOL)
        if protocol != wire.PROTOCOL_VERSION:
            return 0, self._refuse(
                headers,
                remote,
                what,
                REFUSED_PROTOCOL,
                412,
                "incompatible transport protocol version",
                **{"local-protocol": wire.PROTOCOL_VERSION, "remote-protocol": str(protocol)},
            )
        cluster_id = wire.parse_id(headers.get(wire.HDR_CLUSTER_ID))
        if cluster_id != self._cluster_id:
            got = str(headers.get(wire.HDR_CLUSTER_ID))
            return 0, self._refuse(
                headers,
                remote,
                what,
                REFUSED_CLUSTER,
                412,
                f"cluster ID mismatch: this member is in cluster "
                f"{wire.id_hex(self._cluster_id)}, request is for {got}",
                **{
                    "local-cluster-id": wire.id_hex(self._cluster_id),
                    "remote-cluster-id": got,
                },
            )
        to = wire.parse_id(headers.get(wire.HDR_TO))
        if to != self._local_id:
            return 0, self._refuse(
                headers,
                remote,
                what,
                REFUSED_RECIPIENT,
                412,
                f"request for member {headers.get(wire.HDR_TO)}, "
                f"this is {wire.id_hex(self._local_id)}",
                to=str(headers.get(wire.HDR_TO)),
            )
        frm = wire.parse_id(headers.get(wire.HDR_FROM))
        if frm is not None and frm in self.removed:
            # etcd's rafthttp answers a removed member 410, which stops it for good.
            return 0, self._refuse(
                headers,
                remote,
                what,
                REFUSED_SENDER,
                410,
                "removed member",
            )
        if frm is None or frm not in self._stats:
            return 0, self._refuse(
                headers,
                remote,
                what,
                REFUSED_SENDER,
                404,
                f"error sender not found: {headers.get(wire.HDR_FROM)} is not a "
                f"member of cluster {wire.id_hex(self._cluster_id)}",
            )
        return frm, None

    def _stream_in_use(
        self, headers: Mapping[str, str], remote: str | None, what: str, peer_id: int
    ) -> Refusal | None:
        """409 if `peer_id` has a live inbound stream that this request must not displace.

        A stream: any live one (the real member redials only once its old connection is
        dead or silent). A snapshot upload: travels on its own connection, so it is only
        refused when it comes from another address than the member's live stream.
        """
        inbound = self._inbound.get(peer_id)
        if inbound is None:
            return None
        now = asyncio.get_running_loop().time()
        if not inbound.live(now, self._takeover_after):
            return None
        if what == "snapshot" and inbound.remote == remote:
            return None
        silent = now - inbound.stream.last_data
        return self._refuse(
            headers,
            remote,
            what,
            REFUSED_IN_USE,
            409,
            f"member {wire.id_hex(peer_id)} already has a live stream to this member "
            f"(from {inbound.remote}, last frame {silent:.2f}s ago); a new {what} replaces it "
            f"only after {self._takeover_after:.2f}s of silence",
            **{"live-stream-addr": str(inbound.remote)},
        )

    # ---------------------------------------------------------------------------- handlers

    async def _handle_probing(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web  # only once aiohttp serves (module doc)

        # The answer travels back over this member's link to the prober, so this member's
        # lab fault toward it applies, as a slow or cut cable would in both directions:
        # with a delay on both sides the measured round trip is two one-way delays.
        prober = wire.parse_id(request.headers.get(wire.HDR_FROM))
        if wire.asks_for_upgrade(request.headers) and prober is not None:
            echoed = await self._echo_probes(request, prober)
            if echoed is not None:
                return echoed
        fault = self._outbound_fault(prober) if prober is not None else NO_FAULT
        if fault.drop:
            return web.Response(status=503, text="answer dropped by fault injection")
        if fault.delay_seconds > 0.0:
            await asyncio.sleep(fault.delay_seconds)
        return web.json_response({"health": "true"})

    async def _echo_probes(self, request: web.Request, prober: int) -> web.StreamResponse | None:
        """Upgrade a plain probe connection and pass it to the probe process (prober.py).

        None when it cannot leave the loop (TLS, no probe process): the caller answers the
        plain GET, and the prober falls back to plain GETs.
        """
        from aiohttp import web  # only once aiohttp serves (module doc)

        helper = self.probe_helper
        conn = plain_socket(request.transport)
        if request.transport is None or conn is None or helper is None or not helper.running:
            return None
        resp = web.StreamResponse(
            status=101, headers={"Connection": "Upgrade", "Upgrade": wire.STREAM_UPGRADE}
        )
        await resp.prepare(request)
        await resp.write_eof()  # the 101 is written; the prober sends nothing before it
        helper.echo(prober, conn)  # the process gets its own descriptor of the connection
        request.transport.close()  # the loop lets go; the process's copy keeps it open
        return resp

    def answer_raw_probe(self, headers: Mapping[str, str], transport: asyncio.Transport) -> bool:
        """`_echo_probes` on plain asyncio: True when the connection went to the probe
        process; False leaves it to the caller (aiohttp answers the plain GET)."""
        helper = self.probe_helper
        prober = wire.parse_id(headers.get(wire.HDR_FROM))
        conn = plain_socket(transport)
        if prober is None or not wire.asks_for_upgrade(headers):
            return False
        if conn is None or helper is None:
            return False
        if helper.pending:
            # Our probe process starts once our peers are connected: the probe waits for
            # it (well within the prober's timeout), rather than being answered plainly,
            # which would move the peer's probes of us onto its loop for a while.
            transport.pause_reading()
            helper.hold(lambda ok: _hand_over(helper, prober, transport, conn, ok))
            return True
        if not helper.running:
            return False
        _hand_over(helper, prober, transport, conn, True)
        return True

    def _check_stream(
        self, headers: Mapping[str, str], remote: str | None
    ) -> tuple[int, Refusal | None]:
        """Admission of a stream request: the sender's id, or why it is refused."""
        peer_id, refusal = self._admit(headers, remote, "stream")
        if refusal is not None:
            return 0, refusal
        if not wire.asks_for_upgrade(headers):
            return 0, Refusal(
                426,
                f"a peer stream must ask for Upgrade: {wire.STREAM_UPGRADE}",
                {"Upgrade": wire.STREAM_UPGRADE, "Connection": "Upgrade"},
            )
        return peer_id, self._stream_in_use(headers, remote, "stream", peer_id)

    def _register(
        self, peer_id: int, transport: asyncio.BaseTransport | None, remote: str | None
    ) -> _Inbound:
        """The new stream of `peer_id` replaces the one it had (screened, counted)."""
        local_id = self._local_id

        def screen_message(msg: Message) -> str | None:
            return screen.refusal(msg, peer_id, local_id)

        fields = {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}
        stream = _StreamParser(
            FrameDecoder(self._opts.max_frame),
            self._deliver,
            screen_message,
            self._stats[peer_id],
            asyncio.get_running_loop(),
            fields,
        )
        inbound = _Inbound(transport, remote, stream)
        previous = self._inbound.get(peer_id)
        self._inbound[peer_id] = inbound
        if previous is not None:
            previous.close()  # silent past the takeover window: dead, or the peer restarted
        return inbound

    def open_raw_stream(
        self, headers: Mapping[str, str], transport: asyncio.Transport
    ) -> asyncio.Protocol | None:
        """Admit a stream request read on plain asyncio and answer it.

        Returns the protocol the connection must carry from now on (fed the bytes that
        came behind the head by the caller), or None when refused (the answer is written
        and the connection closes).
        """
        remote = remote_host(transport)
        peer_id, refusal = self._check_stream(headers, remote)
        if refusal is not None:
            transport.write(httphead.text_response(refusal.status, refusal.text, refusal.headers))
            transport.close()
            return None
        inbound = self._register(peer_id, transport, remote)
        transport.write(httphead.response(101, self._upgraded))
        task = asyncio.get_running_loop().create_task(
            self._serve_stream(peer_id, inbound), name=f"raft-inbound-{wire.id_hex(peer_id)}"
        )
        self._raw_tasks.add(task)
        task.add_done_callback(self._raw_tasks.discard)
        return _RawStream(inbound.stream, transport)

    async def _handle_stream(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web  # only once aiohttp serves (module doc)

        peer_id, refusal = self._check_stream(request.headers, request.remote)
        if refusal is not None:
            return _as_response(refusal)
        protocol = request.protocol
        if protocol is None or request.transport is None:
            return web.Response(status=400, text="connection already closed")
        inbound = self._register(peer_id, request.transport, request.remote)
        resp = web.StreamResponse(status=101, headers=self._upgraded)
        try:
            await resp.prepare(request)
            await resp.write_eof()  # the 101 goes out now; the connection stays open
            # Bytes that came right behind the request are fed to the parser at once.
            cast("Any", protocol).set_parser(inbound.stream)
        except Exception as exc:  # the connection broke during the handshake
            inbound.stream.finish(f"{type(exc).__name__}: {exc}", failed=True)
        await self._serve_stream(peer_id, inbound)
        return resp

    async def _serve_stream(self, peer_id: int, inbound: _Inbound) -> None:
        """An accepted stream's life: wait for its end or its silence, then account for it."""
        stream = inbound.stream
        loop = asyncio.get_running_loop()
        fields = {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}
        try:
            if not stream.done.done():
                log.info(
                    "accepted peer stream remote-peer-id=%s",
                    wire.id_hex(peer_id),
                    extra={"fields": fields},
                )
                if self._on_stream_accepted is not None:
                    self._on_stream_accepted(peer_id)
            idle = self._idle_timeout
            while not stream.done.done():
                remaining = stream.last_data + idle - loop.time()
                if remaining <= 0:
                    stream.finish(f"no data for {idle:.1f}s", failed=True)
                    break
                await asyncio.wait([stream.done], timeout=remaining)
        except asyncio.CancelledError:
            stream.finish("closed by this member", failed=False)
            raise
        finally:
            if self._inbound.get(peer_id) is inbound:
                del self._inbound[peer_id]
            if inbound.transport is not None:
                inbound.transport.close()
            why, failed = stream.why, stream.failed
            if inbound.closing:
                why, failed = "closed by this member", False
            if failed:
                self._stats[peer_id].receive_failures += 1
            log.log(
                logging.WARNING if failed or stream.refused else logging.INFO,
                "peer stream ended remote-peer-id=%s reason=%r refused-messages=%d",
                wire.id_hex(peer_id),
                why,
                stream.refused,
                extra={"fields": {**fields, "refused-messages": str(stream.refused)}},
            )

    async def _handle_snapshot(self, request: web.Request) -> web.Response:
        from aiohttp import web  # only once aiohttp serves (module doc)

        status, text = await self._serve_snapshot(request.headers, request.remote, request.content)
        return web.Response(status=status, text=text or None)

    def receive_raw_snapshot(
        self, headers: Mapping[str, str], transport: asyncio.BaseTransport, content: Body
    ) -> asyncio.Task[tuple[int, str]]:
        """`_handle_snapshot` on plain asyncio: the upload's (status, text) answer, for the
        peer port to write. The task is one of `streams_ended`'s (and `close_all` cancels
        it), as no aiohttp server waits for it at shutdown."""
        task = asyncio.get_running_loop().create_task(
            self._serve_snapshot(headers, remote_host(transport), content),
            name="raft-inbound-snapshot",
        )
        self._raw_tasks.add(task)
        task.add_done_callback(self._raw_tasks.discard)
        return task

    async def _serve_snapshot(
        self, headers: Mapping[str, str], remote: str | None, content: Body
    ) -> tuple[int, str]:
        """Admit, read, store and deliver one upload: the status and text to answer with
        (204 and no text when the snapshot was delivered)."""
        peer_id, refusal = self._admit(headers, remote, "snapshot")
        if refusal is None:
            refusal = self._stream_in_use(headers, remote, "snapshot", peer_id)
        if refusal is not None:
            return refusal.status, refusal.text
        task = asyncio.current_task()
        if task is not None:
            self._snapshot_tasks.add(task)
        try:
            return await self._receive_snapshot(headers, content, peer_id)
        finally:
            if task is not None:
                self._snapshot_tasks.discard(task)

    async def _receive_snapshot(
        self, headers: Mapping[str, str], content: Body, peer_id: int
    ) -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        stats = self._stats[peer_id]
        started = loop.time()
        fields = {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}
        stats.snapshot_receive_inflight += 1
        try:
            msg, path, nbytes = await receive_snapshot(
                headers,
                content,
                self._snapshot_dir,
                chunk_size=self._opts.snapshot_chunk_size,
                max_frame=self._opts.max_frame,
                screen=lambda m: screen.refusal(m, peer_id, self._local_id, snapshot=True),
            )
        except Exception as exc:  # SnapshotError, or the connection broke mid-upload
            stats.snapshot_receive_failures += 1
            if isinstance(exc, SnapshotRefused):
                stats.messages_refused += 1
                stats.receive_failures += 1
            self._observe_receive(peer_id, loop.time() - started, ok=False)
            log.warning(
                "failed to receive snapshot remote-peer-id=%s error=%r",
                wire.id_hex(peer_id),
                str(exc),
                extra={"fields": fields},
            )
            return 400, f"snapshot not received: {exc}"
        finally:
            stats.snapshot_receive_inflight -= 1
        stats.received_bytes += nbytes
        try:
            await self._deliver_snapshot(msg, path)
        except Exception as exc:
            stats.snapshot_receive_failures += 1
            self._observe_receive(peer_id, loop.time() - started, ok=False)
            log.exception("snapshot handler failed remote-peer-id=%s", wire.id_hex(peer_id))
            return 500, f"snapshot not applied: {exc}"
        stats.snapshot_receive_success += 1
        self._observe_receive(peer_id, loop.time() - started, ok=True)
        meta = msg.snapshot.metadata if msg.snapshot is not None else None
        log.info(
            "received snapshot remote-peer-id=%s index=%s term=%s bytes=%d path=%s",
            wire.id_hex(peer_id),
            meta.index if meta else 0,
            meta.term if meta else 0,
            nbytes,
            path,
            extra={"fields": fields},
        )
        return 204, ""

    def _observe_receive(self, peer_id: int, seconds: float, *, ok: bool) -> None:
        try:
            self._observer().on_snapshot_received(peer_id, seconds, ok)
        except Exception:
            log.exception("snapshot observer failed")


def _hand_over(
    helper: ProbeHelper, prober: int, transport: asyncio.Transport, conn: Any, running: bool
) -> None:
    """Answer an upgraded probe connection with 101 and pass it to the probe process (or
    close it when the process is not running: the prober counts one failed probe)."""
    if transport.is_closing():
        return
    if running:
        transport.write(
            httphead.response(101, {"Connection": "Upgrade", "Upgrade": wire.STREAM_UPGRADE})
        )
        if transport.get_write_buffer_size() == 0:  # all of the 101 is in the kernel
            helper.echo(prober, conn)  # the process gets its own descriptor
    transport.close()  # the loop lets go; the process's copy keeps it open
