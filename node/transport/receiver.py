"""The inbound side: aiohttp handlers for peer streams, RTT probes and snapshot uploads.

A stream handler answers 200 at once (so the sender knows it was accepted), then reads
frames from the request body as they arrive and hands each message to the driver on
the event loop. One inbound stream per peer: a newer stream from the same peer closes
the older one, so two connections can never interleave one peer's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

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
        app.router.add_post(wire.STREAM_PATH, self._handle_stream)
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
        stats = self._stats[peer_id]
        inbound = _Inbound(request)
        previous = self._inbound.get(peer_id)
        self._inbound[peer_id] = inbound
        if previous is not None:
            previous.close()  # the peer redialled; its old connection is dead or dying
        resp = web.StreamResponse(status=200)
        resp.headers[wire.HDR_FROM] = wire.id_hex(self._local_id)
        await resp.prepare(request)
        log.info(
            "accepted peer stream remote-peer-id=%s",
            wire.id_hex(peer_id),
            extra={"fields": {**self._log_fields, "remote-peer-id": wire.id_hex(peer_id)}},
        )
        decoder = FrameDecoder(self._opts.max_frame)
        content = request.content
        deliver = self._deliver
        why = "peer closed the stream"
        failed = False
        loop = asyncio.get_running_loop()
        idle = self._idle_timeout
        # One deadline for the stream's life, pushed forward at most every idle/8 s rather
        # than a new timeout per read (a busy stream reads thousands of chunks a second);
        # a silent stream is still cut after 7/8 to 1 idle timeout without data.
        pushed_at = loop.time()
        try:
            async with asyncio.timeout_at(pushed_at + idle) as deadline:
                while True:
                    data = await content.readany()
                    if not data:
                        if decoder.buffered:
                            why, failed = "stream ended inside a frame", True
                        break
                    now = loop.time()
                    if now - pushed_at > idle / 8:
                        deadline.reschedule(now + idle)
                        pushed_at = now
                    stats.received_bytes += len(data)
                    msgs = decoder.feed(data)
                    stats.messages_received += len(msgs)
                    for msg in msgs:
                        deliver(msg)
        except TimeoutError:
            why, failed = f"no data for {self._idle_timeout:.1f}s", True
        except CodecError as exc:
            why, failed = f"corrupt frame: {exc}", True
        except Exception as exc:  # connection lost, broken chunked encoding, ...
            why, failed = f"{type(exc).__name__}: {exc}", True
        finally:
            if self._inbound.get(peer_id) is inbound:
                del self._inbound[peer_id]
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
        with contextlib.suppress(Exception):
            await resp.write_eof()
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
