"""The outbound side for one peer: bounded queue, one long-lived stream, RTT prober.

One streaming POST per peer carries every message: the request body is an async
generator that waits for the queue, drains everything queued into ONE write (batching),
and the receiver decodes frames as they arrive. No per-message HTTP request, no
per-message syscall.

Queue policy while disconnected (the brief leaves it open; this is the choice):
messages are queued only while a stream is connecting or connected. When a dial fails,
a stream breaks, or the peer refuses us, everything still queued is dropped and counted
as a send failure, and messages offered during the reconnect backoff are dropped at
once. We keep not even the newest message, because Raft retransmits everything that
matters from its own state: heartbeats every tick, votes every election timeout, and
appends from the follower's Progress once `on_unreachable` has moved it to probe state.
Delivering old messages after a reconnect would only replay what the core already gave
up on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
from enum import Enum
from typing import TYPE_CHECKING

import aiohttp

from node.raft.messages import Message, MessageType
from node.transport import wire
from node.transport.codec import KEEPALIVE_FRAME, LENGTH_SIZE, CodecError, encode_into
from node.transport.stats import NO_FAULT, PeerFault, PeerStats, TransportObserver

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from node.transport.options import TransportOptions

log = logging.getLogger(__name__)

# Consecutive probe timeouts after which a connected stream is presumed stuck (a paused
# or wedged peer whose kernel still accepts our bytes) and is torn down: with the default
# probe interval and timeout that is ~3-5 s, close to etcd's 5 s connection read timeout.
STUCK_PROBE_TIMEOUTS = 2

# Losing one of these means the follower's Progress is wrong until the core re-probes.
_CRITICAL = frozenset({MessageType.MsgApp, MessageType.MsgSnap})


class StreamState(Enum):
    """Where the outbound stream is; decides whether `enqueue` keeps or drops."""

    DISCONNECTED = "disconnected"  # backoff between attempts: drop on enqueue
    CONNECTING = "connecting"  # dialling: queue (flushed once the stream is up)
    CONNECTED = "connected"  # streaming: queue, the writer drains it


class PeerSender:
    """Everything this member sends to one peer, run by two tasks the Transport owns."""

    def __init__(
        self,
        *,
        local_id: int,
        cluster_id: int,
        peer_id: int,
        url: str,
        stats: PeerStats,
        options: TransportOptions,
        heartbeat_interval: float,
        report_unreachable: Callable[[int], None],
        observer: Callable[[], TransportObserver],
    ) -> None:
        self.peer_id = peer_id
        self.url = url.rstrip("/")
        self.stats = stats
        self._opts = options
        self._keepalive = options.keepalive(heartbeat_interval)
        self._headers = wire.stream_headers(local_id, peer_id, cluster_id)
        self._report_unreachable = report_unreachable
        self._observer = observer
        self._log_fields = {
            "local-member-id": wire.id_hex(local_id),
            "remote-peer-id": wire.id_hex(peer_id),
        }
        # Invariant: every element is (enqueue time on the loop clock, message), oldest first.
        self._queue: collections.deque[tuple[float, Message]] = collections.deque()
        self._wake = asyncio.Event()  # set by enqueue and by fault changes
        self._probe_now = asyncio.Event()  # set when a stream connects
        self.state = StreamState.DISCONNECTED
        self.fault: PeerFault = NO_FAULT
        self._closing = False  # set by request_close: finish the body, end the stream task
        self._drop_warned = False  # one WARNING per episode of drops, DEBUG after that
        self._dial_failing = False  # log dial failures on the transition only
        self._probe_failing = False
        self._probe_timeouts = 0  # consecutive, reset by any answered probe
        self._resp: aiohttp.ClientResponse | None = None  # the live stream, while connected
        self._reset_reason = ""
        self._rng = random.Random()  # jitter only; not part of any reproducible state

    # ----------------------------------------------------------------------------- send side

    def enqueue(self, msg: Message, now: float) -> None:
        """Queue `msg` for the writer, or drop it and count why. Never blocks."""
        if self.fault.drop:
            self.stats.dropped_fault += 1
            self._dropped(msg, "drop fault active")
            return
        if self.state is StreamState.DISCONNECTED:
            self.stats.dropped_disconnected += 1
            self._dropped(msg, "no stream to peer")
            return
        if len(self._queue) >= self._opts.queue_size:
            self.stats.dropped_overflow += 1
            self._dropped(msg, "sending buffer is full")
            return
        self._queue.append((now, msg))
        self._wake.set()

    def _dropped(self, msg: Message, reason: str) -> None:
        self.stats.send_failures += 1
        if msg.type in _CRITICAL:
            self._report_unreachable(self.peer_id)
        if not self._drop_warned:
            self._drop_warned = True
            log.warning(
                "dropped Raft message to peer reason=%r type=%s remote-peer-id=%s",
                reason,
                msg.type.name,
                wire.id_hex(self.peer_id),
                extra={"fields": {**self._log_fields, "reason": reason}},
            )
        else:
            log.debug("dropped message type=%s reason=%r", msg.type.name, reason)

    def _drop_queue(self, reason: str) -> None:
        """Discard everything queued: it was addressed to a stream that no longer exists."""
        if not self._queue:
            return
        critical = False
        n = len(self._queue)
        for _, m in self._queue:
            critical = critical or m.type in _CRITICAL
        self._queue.clear()
        self.stats.send_failures += n
        self.stats.dropped_disconnected += n
        if critical:
            self._report_unreachable(self.peer_id)
        log.debug("dropped %d queued messages reason=%r", n, reason)

    def set_fault(self, fault: PeerFault) -> None:
        """Apply a lab fault; a drop fault also discards what is already queued."""
        self.fault = fault
        self._drop_warned = False  # a new fault is a new episode worth one warning
        if fault.drop and self._queue:
            n = len(self._queue)
            self._queue.clear()
            self.stats.send_failures += n
            self.stats.dropped_fault += n
            self._report_unreachable(self.peer_id)
        self._update_active()
        self._wake.set()  # the writer re-evaluates due times under the new delay

    def _update_active(self) -> None:
        self.stats.active = self.state is StreamState.CONNECTED and not self.fault.drop

    def request_close(self) -> None:
        """End the stream gracefully: the body ends, so the receiver sees a clean EOF."""
        self._closing = True
        self._wake.set()

    def discard(self) -> None:
        """Forget queued messages without callbacks: the transport is stopping."""
        self._queue.clear()
        self.state = StreamState.DISCONNECTED
        self._update_active()

    async def _frames(self) -> AsyncIterator[bytes]:
        """The stream's request body: one chunk per batch of due messages, or a keep-alive.

        Under a delay fault a message becomes due `delay` after it was queued; only due
        messages are written, oldest first, so order is kept and each is held at least
        `delay`. Keep-alives are not delayed: the link stays up, only Raft traffic is late.
        """
        loop = asyncio.get_running_loop()
        queue = self._queue
        stats = self.stats
        keepalive = self._keepalive
        # aiohttp sends the request headers together with the first body chunk: a
        # keep-alive first lets the receiver answer (and us learn we are accepted) at once.
        stats.sent_bytes += LENGTH_SIZE
        yield KEEPALIVE_FRAME
        last_write = loop.time()
        while not self._closing:
            now = loop.time()
            wake_at = math.inf
            if queue:
                delay = self.fault.delay_seconds
                batch: list[Message]
                if delay <= 0.0:
                    batch = [m for _, m in queue]
                    queue.clear()
                else:
                    batch = []
                    while queue and queue[0][0] + delay <= now:
                        batch.append(queue.popleft()[1])
                    if queue:
                        wake_at = queue[0][0] + delay
                if batch:
                    parts: list[bytes] = []
                    size = 0
                    for m in batch:
                        try:
                            size += encode_into(m, parts)
                        except CodecError:
                            stats.send_failures += 1
                            log.exception("cannot encode message; dropped type=%s", m.type.name)
                    if parts:
                        stats.sent_bytes += size
                        stats.messages_sent += len(batch)
                        last_write = now
                        yield b"".join(parts)
                    continue
            keepalive_at = last_write + keepalive
            if now >= keepalive_at:
                stats.sent_bytes += LENGTH_SIZE
                last_write = now
                yield KEEPALIVE_FRAME
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout_at(min(wake_at, keepalive_at)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # ------------------------------------------------------------------------ stream task

    async def run_stream(self, session: aiohttp.ClientSession) -> None:
        """Keep one stream to the peer open for the transport's life, redialling with backoff."""
        backoff = self._opts.backoff_initial
        while True:
            self.state = StreamState.CONNECTING
            connected_for = await self._stream_once(session)
            if self._closing:
                return
            self.state = StreamState.DISCONNECTED
            self._update_active()
            if connected_for is not None and connected_for >= self._opts.backoff_max:
                backoff = self._opts.backoff_initial  # a healthy stream earns a fast retry
            # Jitter keeps two members that lost each other from redialling in lock step.
            pause = backoff * (0.8 + 0.4 * self._rng.random())
            backoff = min(backoff * 2, self._opts.backoff_max)
            await asyncio.sleep(pause)

    async def _stream_once(self, session: aiohttp.ClientSession) -> float | None:
        """One dial and, if accepted, the stream's life. Returns seconds connected, or None."""
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._opts.dial_timeout, sock_read=None
        )
        try:
            async with asyncio.timeout(self._opts.dial_timeout):
                resp = await session.post(
                    self.url + wire.STREAM_PATH,
                    data=self._frames(),
                    headers=self._headers,
                    timeout=timeout,
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._dial_failed(f"{type(exc).__name__}: {exc}")
            return None
        try:
            if resp.status != 200:
                try:
                    async with asyncio.timeout(self._opts.dial_timeout):
                        reason = (await resp.text()).strip()[:200]
                except (aiohttp.ClientError, OSError, TimeoutError):
                    reason = ""
                self._refused(resp.status, reason)
                return None
            self._connected()
            self._resp = resp
            started = loop.time()
            try:
                await resp.content.read()  # the receiver sends nothing; returns at EOF
                why = "peer closed the stream"
            except (aiohttp.ClientError, OSError) as exc:
                why = self._reset_reason or f"{type(exc).__name__}: {exc}"
            self._disconnected(why)
            return loop.time() - started
        finally:
            self._resp = None
            self._reset_reason = ""
            resp.close()

    def _connected(self) -> None:
        self.state = StreamState.CONNECTED
        self._dial_failing = False
        self._drop_warned = False
        self._update_active()
        self._probe_now.set()
        log.info(
            "established peer stream remote-peer-id=%s url=%s",
            wire.id_hex(self.peer_id),
            self.url,
            extra={"fields": self._log_fields},
        )

    def _disconnected(self, why: str) -> None:
        if self._closing:
            return  # our own graceful close, not a failure
        self.state = StreamState.DISCONNECTED
        self.stats.disconnects += 1
        self._update_active()
        self._drop_queue(why)
        # Appends written into the dying connection may be lost: let the core re-probe.
        self._report_unreachable(self.peer_id)
        log.warning(
            "lost peer stream remote-peer-id=%s error=%r",
            wire.id_hex(self.peer_id),
            why,
            extra={"fields": {**self._log_fields, "error": why}},
        )

    def _dial_failed(self, why: str) -> None:
        self.state = StreamState.DISCONNECTED
        self._drop_queue(why)
        level = logging.DEBUG if self._dial_failing else logging.WARNING
        self._dial_failing = True
        log.log(
            level,
            "failed to dial peer stream remote-peer-id=%s url=%s error=%r",
            wire.id_hex(self.peer_id),
            self.url,
            why,
            extra={"fields": {**self._log_fields, "error": why}},
        )

    def _refused(self, status: int, reason: str) -> None:
        self.state = StreamState.DISCONNECTED
        self._drop_queue(f"refused with HTTP {status}")
        # 412 is a misconfiguration (wrong cluster, incompatible build): an operator must
        # act. Anything else (503 while the peer shuts down) is transient.
        level = logging.ERROR if status == 412 else logging.WARNING
        if self._dial_failing:
            level = logging.DEBUG
        self._dial_failing = True
        log.log(
            level,
            "peer refused our stream remote-peer-id=%s status=%d reason=%r",
            wire.id_hex(self.peer_id),
            status,
            reason,
            extra={"fields": {**self._log_fields, "status": status, "reason": reason}},
        )

    # ------------------------------------------------------------------------ prober task

    async def run_prober(self, session: aiohttp.ClientSession) -> None:
        """Measure the HTTP round trip to the peer every interval and right after connecting."""
        while True:
            try:
                async with asyncio.timeout(self._opts.probe_interval):
                    await self._probe_now.wait()
            except TimeoutError:
                pass
            self._probe_now.clear()
            await self._probe_once(session)

    def _reset_stuck_stream(self) -> None:
        """Tear down a stream whose peer stopped answering: its writes only fill buffers."""
        resp = self._resp
        if resp is None or self._reset_reason:
            return
        self._reset_reason = f"peer answered no probe {self._probe_timeouts} times in a row"
        log.warning(
            "resetting stuck peer stream remote-peer-id=%s reason=%r",
            wire.id_hex(self.peer_id),
            self._reset_reason,
            extra={"fields": self._log_fields},
        )
        resp.close()  # the stream task's read fails at once and it redials with backoff

    async def _probe_once(self, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        fault = self.fault
        if fault.drop:  # a partitioned peer answers no probe
            self.stats.probe_failures += 1
            return
        started = loop.time()
        try:
            if fault.delay_seconds > 0.0:
                # The injected latency is part of the round trip, as a slow link's would be.
                await asyncio.sleep(fault.delay_seconds)
            async with (
                asyncio.timeout(self._opts.probe_timeout),
                session.get(self.url + wire.PROBING_PATH, headers=self._headers) as resp,
            ):
                await resp.read()
                ok = resp.status == 200
            why = f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            ok = False
            why = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                self._probe_timeouts += 1
                if self._probe_timeouts >= STUCK_PROBE_TIMEOUTS:
                    self._reset_stuck_stream()
        if not ok:
            self.stats.probe_failures += 1
            if not self._probe_failing:
                log.warning(
                    "prober detected unhealthy status remote-peer-id=%s error=%r",
                    wire.id_hex(self.peer_id),
                    why,
                    extra={"fields": {**self._log_fields, "error": why}},
                )
            self._probe_failing = True
            return
        rtt = loop.time() - started
        self._probe_timeouts = 0
        self._probe_failing = False
        self.stats.probes_ok += 1
        self.stats.last_rtt_seconds = rtt
        try:
            self._observer().on_rtt(self.peer_id, rtt)
        except Exception:
            log.exception("RTT observer failed remote-peer-id=%s", wire.id_hex(self.peer_id))
