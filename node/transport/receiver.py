"""The inbound side: aiohttp handlers for peer streams, RTT probes and snapshot uploads.

A stream handler admits the sender, answers 101 Switching Protocols, and gives the
upgraded connection a `_StreamParser`, the way aiohttp hands a WebSocket to its frame
reader: from then on aiohttp's `data_received` passes each chunk of bytes straight to
the parser, which decodes frames and hands the messages to the driver in the same call.
No task wakes up per chunk; the handler only waits for the stream to end or go silent.
One inbound stream per peer: a newer stream from the same peer closes the older one,
so two connections can never interleave one peer's messages.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

from node.transport import wire
from node.transport.codec import CodecError, FrameDecoder
from node.transport.snapshot import receive_snapshot
from node.transport.stats import NO_FAULT

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from node.raft.messages import Message
    from node.transport.options import TransportOptions
    from node.transport.stats import PeerFault, PeerStats, TransportObserver

log = logging.getLogger(__name__)


class _Inbound:
    """One open inbound stream; `closing` marks a close we asked for (not a failure)."""

    __slots__ = ("closing", "request")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.closing = False

    def close(self) -> None:
        self.closing = True
        transport = self.request.transport
        if transport is not None:
            # Ends the body read in the handler (connection_lost), which then returns.
            transport.close()


class _StreamParser:
    """Decodes an upgraded stream inside aiohttp's `data_received`; `done` ends the stream.

    aiohttp calls `feed_data` with every chunk and `feed_eof` when the connection is
    lost. The parser keeps the time of the last chunk for the handler's idle check.
    """

    __slots__ = ("_decoder", "_deliver", "_loop", "_stats", "done", "failed", "last_data", "why")

    def __init__(
        self,
        decoder: FrameDecoder,
        deliver: Callable[[Message], None],
        stats: PeerStats,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._decoder = decoder
        self._deliver = deliver
        self._stats = stats
        self._loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.last_data = loop.time()
        self.why = "peer closed the stream"
        self.failed = False

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
        stats.messages_received += len(msgs)
        deliver = self._deliver
        for msg in msgs:
            deliver(msg)
        return False, b""

    def feed_eof(self) -> None:
        if self._decoder.buffered:
            self.finish("stream ended inside a frame", failed=True)
        else:
            self.finish("peer closed the stream", failed=False)


class Receiver:
    """Serves /raft/stream, /raft/probing and /raft/snapshot for one member."""

    def __init__(
        self,
        *,
        local_id: int,
        cluster_id: int,
        stats: dict[int, PeerStats],
        options: TransportOptions,
        heartbeat_interval: float,
        snapshot_dir: str,
        deliver: Callable[[Message], None],
        deliver_snapshot: Callable[[Message, str], Awaitable[None]],
        observer: Callable[[], TransportObserver],
        outbound_fault: Callable[[int], PeerFault],
    ) -> None:
        self._local_id = local_id
        self._cluster_id = cluster_id
        self._stats = stats
        self._opts = options
        self._idle_timeout = options.idle(heartbeat_interval)
        self._snapshot_dir = snapshot_dir
        self._deliver = deliver
        self._deliver_snapshot = deliver_snapshot
        self._observer = observer
        self._outbound_fault = outbound_fault
        self._inbound: dict[int, _Inbound] = {}
        self._snapshot_tasks: set[asyncio.Task[object]] = set()
        self.running = False
        self._log_fields = {"local-member-id": wire.id_hex(local_id)}

    def add_routes(self, app: web.Application) -> None:
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

    def close_all(self) -> None:
        """Close every inbound stream and abort snapshot uploads in progress."""
        for inbound in list(self._inbound.values()):
            inbound.close()
        for task in list(self._snapshot_tasks):
            task.cancel()

    # ------------------------------------------------------------------------- admission

    def _admit(self, request: web.Request, what: str) -> tuple[int, web.Response | None]:
        """The sender's id, or an error response refusing the request (logged)."""
        remote = request.headers.get(wire.HDR_FROM, "?")
        if not self.running:
            return 0, web.Response(status=503, text="peer transport is not running")
        if request.headers.get(wire.HDR_PROTOCOL) != wire.PROTOCOL_VERSION:
            log.error(
                "rejected peer %s: incompatible transport protocol remote-peer-id=%s "
                "local-protocol=%s remote-protocol=%s",
                what,
                remote,
                wire.PROTOCOL_VERSION,
                request.headers.get(wire.HDR_PROTOCOL),
                extra={"fields": self._log_fields},
            )
            return 0, web.Response(status=412, text="incompatible transport protocol version")
        cluster_id = wire.parse_id(request.headers.get(wire.HDR_CLUSTER_ID))
        if cluster_id != self._cluster_id:
            got = request.headers.get(wire.HDR_CLUSTER_ID)
            log.error(
                "rejected peer %s: cluster ID mismatch local-cluster-id=%s "
                "remote-cluster-id=%s remote-peer-id=%s",
                what,
                wire.id_hex(self._cluster_id),
                got,
                remote,
                extra={
                    "fields": {
                        **self._log_fields,
                        "local-cluster-id": wire.id_hex(self._cluster_id),
                        "remote-cluster-id": got,
                        "remote-peer-id": remote,
                    }
                },
            )
            return 0, web.Response(
                status=412,
                text=f"cluster ID mismatch: this member is in cluster "
                f"{wire.id_hex(self._cluster_id)}, request is for {got}",
            )
        to = wire.parse_id(request.headers.get(wire.HDR_TO))
        if to != self._local_id:
            log.error(
                "rejected peer %s: addressed to another member to=%s local-member-id=%s",
                what,
                request.headers.get(wire.HDR_TO),
                wire.id_hex(self._local_id),
                extra={"fields": self._log_fields},
            )
            return 0, web.Response(
                status=412, text=f"request for member {to}, this is {self._local_id:x}"
            )
        frm = wire.parse_id(request.headers.get(wire.HDR_FROM))
        if frm is None or frm not in self._stats:
            log.warning(
                "rejected peer %s: unknown sender remote-peer-id=%s",
                what,
                remote,
                extra={"fields": self._log_fields},
            )
            return 0, web.Response(status=404, text="sender not found in this cluster")
        return frm, None

    # ---------------------------------------------------------------------------- handlers

    async def _handle_probing(self, request: web.Request) -> web.Response:
        # The answer travels back over this member's link to the prober, so this member's
        # lab fault toward it applies, as a slow or cut cable would in both directions:
        # with a delay on both sides the measured round trip is two one-way delays.
        prober = wire.parse_id(request.headers.get(wire.HDR_FROM))
        fault = self._outbound_fault(prober) if prober is not None else NO_FAULT
        if fault.drop:
            return web.Response(status=503, text="answer dropped by fault injection")
        if fault.delay_seconds > 0.0:
            await asyncio.sleep(fault.delay_seconds)
        return web.json_response({"health": "true"})

    async def _handle_stream(self, request: web.Request) -> web.StreamResponse:
        peer_id, refusal = self._admit(request, "stream")
        if refusal is not None:
            return refusal
        if not wire.asks_for_upgrade(request.headers):
            return web.Response(
                status=426,
                text=f"a peer stream must ask for Upgrade: {wire.STREAM_UPGRADE}",
                headers={"Upgrade": wire.STREAM_UPGRADE, "Connection": "Upgrade"},
            )
        protocol = request.protocol
        if protocol is None or request.transport is None:
            return web.Response(status=400, text="connection already closed")
        stats = self._stats[peer_id]
        inbound = _Inbound(request)
        previous = self._inbound.get(peer_id)
        self._inbound[peer_id] = inbound
        if previous is not None:
            previous.close()  # the peer redialled; its old connection is dead or dying
        loop = asyncio.get_running_loop()
        stream = _StreamParser(FrameDecoder(self._opts.max_frame), self._deliver, stats, loop)
        resp = web.StreamResponse(
            status=101,
            headers={
                "Connection": "Upgrade",
                "Upgrade": wire.STREAM_UPGRADE,
                wire.HDR_FROM: wire.id_hex(self._local_id),
            },
        )
        try:
            await resp.prepare(request)
            await resp.write_eof()  # the 101 goes out now; the connection stays open
            # Bytes that came right behind the request are fed to the parser at once.
            cast("Any", protocol).set_parser(stream)
            log.info(
                "accepted peer stream remote-peer-id=%s",
                wire.id_hex(peer_id),
                extra={"fields": {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}},
            )
            idle = self._idle_timeout
            while not stream.done.done():
                remaining = stream.last_data + idle - loop.time()
                if remaining <= 0:
                    stream.finish(f"no data for {idle:.1f}s", failed=True)
                    break
                await asyncio.wait([stream.done], timeout=remaining)
        except Exception as exc:  # the connection broke during the handshake
            stream.finish(f"{type(exc).__name__}: {exc}", failed=True)
        finally:
            if self._inbound.get(peer_id) is inbound:
                del self._inbound[peer_id]
            if request.transport is not None:
                request.transport.close()
        why, failed = stream.why, stream.failed
        if inbound.closing:
            why, failed = "closed by this member", False
        if failed:
            stats.receive_failures += 1
        log.log(
            logging.WARNING if failed else logging.INFO,
            "peer stream ended remote-peer-id=%s reason=%r",
            wire.id_hex(peer_id),
            why,
            extra={"fields": {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}},
        )
        return resp

    async def _handle_snapshot(self, request: web.Request) -> web.Response:
        peer_id, refusal = self._admit(request, "snapshot")
        if refusal is not None:
            return refusal
        task = asyncio.current_task()
        if task is not None:
            self._snapshot_tasks.add(task)
        try:
            return await self._receive_snapshot(request, peer_id)
        finally:
            if task is not None:
                self._snapshot_tasks.discard(task)

    async def _receive_snapshot(self, request: web.Request, peer_id: int) -> web.Response:
        loop = asyncio.get_running_loop()
        stats = self._stats[peer_id]
        started = loop.time()
        fields = {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}
        stats.snapshot_receive_inflight += 1
        try:
            msg, path, nbytes = await receive_snapshot(
                request,
                self._snapshot_dir,
                chunk_size=self._opts.snapshot_chunk_size,
                max_frame=self._opts.max_frame,
            )
        except Exception as exc:  # SnapshotError, or the connection broke mid-upload
            stats.snapshot_receive_failures += 1
            self._observe_receive(peer_id, loop.time() - started, ok=False)
            log.warning(
                "failed to receive snapshot remote-peer-id=%s error=%r",
                wire.id_hex(peer_id),
                str(exc),
                extra={"fields": fields},
            )
            return web.Response(status=400, text=f"snapshot not received: {exc}")
        finally:
            stats.snapshot_receive_inflight -= 1
        stats.received_bytes += nbytes
        try:
            await self._deliver_snapshot(msg, path)
        except Exception as exc:
            stats.snapshot_receive_failures += 1
            self._observe_receive(peer_id, loop.time() - started, ok=False)
            log.exception("snapshot handler failed remote-peer-id=%s", wire.id_hex(peer_id))
            return web.Response(status=500, text=f"snapshot not applied: {exc}")
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
        return web.Response(status=204)

    def _observe_receive(self, peer_id: int, seconds: float, *, ok: bool) -> None:
        try:
            self._observer().on_snapshot_received(peer_id, seconds, ok)
        except Exception:
            log.exception("snapshot observer failed")
