"""The outbound side for one peer: bounded queue, one long-lived stream, RTT prober.

The prober probes every `probe_interval` (the stuck-stream detector below counts its
timeouts); the RTT metric gets etcd's smoothed RTT on etcd's cadence (rttmonitor.py).

One HTTP request per peer opens the stream: a GET with `Upgrade: tcp` that the receiver
answers 101, after which the connection carries nothing but frames. `Transport.send`
queues a batch of messages and then calls `flush`, which writes everything queued to
the socket in ONE write, synchronously: no task wake-up, no generator, no chunked
encoding between the driver and the kernel. (A chunked POST body fed by an async
generator would cost two loop turns per message, about a fifth of a member's CPU at one
client.) A pump task only writes keep-alives and messages held back by a lab delay fault.

Queue policy while disconnected: messages are queued only while a stream is connecting
or connected. When a dial fails, a stream breaks, or the peer refuses us, everything still
queued is dropped and counted as a send failure, and messages offered during the reconnect
backoff are dropped at once. Not even the newest message is kept, because Raft retransmits
everything that matters from its own state: heartbeats every tick, votes every election
timeout, and appends from the follower's Progress once `on_unreachable` has moved it to
probe state. Delivering old messages after a reconnect would only replay what the core
already gave up on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
from enum import Enum
from typing import TYPE_CHECKING

from node.raft.messages import Message, MessageType
from node.transport import wire
from node.transport.codec import KEEPALIVE_FRAME, LENGTH_SIZE, CodecError, encode_into
from node.transport.dial import Refused, dial_stream
from node.transport.prober import ProbeHelper, ProbeOutcome
from node.transport.rttmonitor import MonitorTiming, SmoothedRtt, run_monitor
from node.transport.stats import NO_FAULT, PeerFault, PeerStats

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    import aiohttp

    from node.transport.dial import Stream
    from node.transport.local import LocalMember

log = logging.getLogger(__name__)

# Consecutive probe timeouts after which a connected stream is presumed stuck (a paused
# or wedged peer whose kernel still accepts our bytes) and is torn down: with the default
# probe interval and timeout that is ~3-5 s, close to etcd's 5 s connection read timeout.
STUCK_PROBE_TIMEOUTS = 2

# A peer that answered a probe upgrade with a plain answer is probed over HTTP; it is
# asked to upgrade again after this long: its answer may only mean that its probe side
# was not up yet (a member's peer port opens before its transport starts).
PROBE_UPGRADE_RETRY_SECONDS = 30.0

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
        local: LocalMember,
        *,
        peer_id: int,
        url: str,
        stats: PeerStats,
        report_unreachable: Callable[[int], None],
        report_active: Callable[[int], None] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.url = url.rstrip("/")
        self.stats = stats
        self._local = local
        self._opts = local.options
        self._keepalive = local.options.keepalive(local.heartbeat_interval)
        self._headers = wire.stream_headers(local.member_id, peer_id, local.cluster_id)
        self._stream_headers = wire.upgrade_headers(self._headers)
        self._report_unreachable = report_unreachable
        self._report_active = report_active  # the stream (re)connected: the peer is reachable
        self._observer = local.observer
        self._log_fields = {
            "local-member-id": wire.id_hex(local.member_id),
            "remote-peer-id": wire.id_hex(peer_id),
        }
        # Invariant: every element is (enqueue time on the loop clock, message), oldest first.
        self._queue: collections.deque[tuple[float, Message]] = collections.deque()
        self._wake = asyncio.Event()  # wakes the pump: held messages, fault changes, close
        self._probe_now = asyncio.Event()  # set when a stream connects
        self._redial = asyncio.Event()  # set when the peer showed it is back: end the backoff
        self.state = StreamState.DISCONNECTED
        self.fault: PeerFault = NO_FAULT
        self._closing = False  # set by request_close: finish the body, end the stream task
        self._drop_warned = False  # one WARNING per episode of drops, DEBUG after that
        self._dial_failing = False  # log dial failures on the transition only
        self._dial_error = ""  # ... or when the reason changes (refused -> TLS certificate)
        self._probe_failing = False
        self._probe_timeouts = 0  # consecutive, reset by any answered probe
        self._stream: Stream | None = None  # the live stream, while connected
        # The upgraded connection's socket, while connected and writable: flush writes here.
        self._socket: asyncio.WriteTransport | None = None
        self._last_write = 0.0  # loop time of the last write, for keep-alives
        self._reset_reason = ""
        self._rng = random.Random()  # jitter only; not part of any reproducible state
        # Probes are timed by the member's probe process over a plain connection
        # (prober.py); https links, and peers that do not upgrade probes, probe over HTTP.
        self.probe_helper: ProbeHelper | None = None
        self._probe_upgrades = self.url.startswith("http://")
        self._probe_upgrade_retry_at = math.inf  # loop time to ask for upgrades again
        # etcd's prober status of this peer: the SRTT the RTT histogram observes. A
        # monitor interval below the probe interval (the compressed-time lab) probes that
        # often too, so the SRTT follows a change within seconds.
        self._rtt_timing = MonitorTiming(self._opts.rtt_monitor_interval)
        self._probe_interval = min(self._opts.probe_interval, self._opts.rtt_monitor_interval)
        self.rtt = SmoothedRtt(self._rtt_timing.sample_every(self._probe_interval))

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

    def flush(self) -> None:
        """Write everything queued as one write, now; `Transport.send` calls it per batch.

        While connecting, or while a delay fault holds messages back, the queue stays and
        the pump (or the connect) writes it later.
        """
        if not self._queue:
            return
        if self._socket is None or self.fault.delay_seconds > 0.0:
            self._wake.set()
            return
        batch = [m for _, m in self._queue]
        self._queue.clear()
        self._write(batch)

    def _write(self, batch: list[Message]) -> None:
        """Encode `batch` and hand it to the socket, or drop it when the socket cannot take it.

        The socket's own buffer is the second bound after the queue: a peer that stopped
        reading (SIGSTOP) fills the kernel buffers, then this one; past the limit its
        messages are dropped and counted, as etcd drops when its stream buffer is full.
        """
        sock = self._socket
        stats = self.stats
        if sock is None or sock.is_closing():
            for m in batch:
                stats.dropped_disconnected += 1
                self._dropped(m, "no stream to peer")
            return
        if sock.get_write_buffer_size() > self._opts.write_buffer_limit:
            for m in batch:
                stats.dropped_overflow += 1
                self._dropped(m, "sending buffer is full")
            return
        parts: list[bytes] = []
        size = 0
        sent = 0
        for m in batch:
            try:
                size += encode_into(m, parts)
                sent += 1
            except CodecError:
                stats.send_failures += 1
                log.exception("cannot encode message; dropped type=%s", m.type.name)
        if parts:
            sock.write(b"".join(parts))
            stats.sent_bytes += size
            stats.messages_sent += sent
            self._last_write = asyncio.get_running_loop().time()

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
        active = self.state is StreamState.CONNECTED and not self.fault.drop
        became = active and not self.stats.active
        if became:
            self.stats.active_since = time.monotonic()
        elif not active:
            self.stats.active_since = 0.0
        self.stats.active = active
        if became and self._report_active is not None:
            self._report_active(self.peer_id)

    def request_close(self) -> None:
        """End the stream gracefully: the pump half-closes it, the receiver sees a clean EOF."""
        self._closing = True
        self._wake.set()

    def discard(self) -> None:
        """Forget queued messages without callbacks: the transport is stopping."""
        self._queue.clear()
        self.state = StreamState.DISCONNECTED
        self._update_active()

    async def _pump(self, sock: asyncio.WriteTransport) -> None:
        """While connected: write keep-alives, and messages a delay fault held back.

        Under a delay fault a message becomes due `delay` after it was queued; only due
        messages are written, oldest first, so order is kept and each is held at least
        `delay`. Keep-alives are not delayed: the link stays up, only Raft traffic is late.
        A graceful close half-closes the socket, so the receiver sees a clean EOF.
        """
        loop = asyncio.get_running_loop()
        queue = self._queue
        keepalive = self._keepalive
        while not self._closing and not sock.is_closing():
            now = loop.time()
            wake_at = math.inf
            if queue:
                delay = self.fault.delay_seconds
                if delay <= 0.0:
                    self.flush()
                else:
                    due: list[Message] = []
                    while queue and queue[0][0] + delay <= now:
                        due.append(queue.popleft()[1])
                    if due:
                        self._write(due)
                    if queue:
                        wake_at = queue[0][0] + delay
            keepalive_at = self._last_write + keepalive
            if now >= keepalive_at:
                sock.write(KEEPALIVE_FRAME)
                self.stats.sent_bytes += LENGTH_SIZE
                self._last_write = now
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout_at(min(wake_at, keepalive_at)):
                    await self._wake.wait()
            except TimeoutError:
                pass
        if self._closing and not sock.is_closing() and sock.can_write_eof():
            sock.write_eof()

    # ------------------------------------------------------------------------ stream task

    async def run_stream(self, tls: ssl.SSLContext | bool) -> None:
        """Keep one stream to the peer open for the transport's life, redialling with backoff.

        `tls` verifies an https peer (dial.py).
        """
        backoff = self._opts.backoff_initial
        while True:
            self.state = StreamState.CONNECTING
            connected_for = await self._stream_once(tls)
            if self._closing:
                return
            self.state = StreamState.DISCONNECTED
            self._update_active()
            if connected_for is not None and connected_for >= self._opts.backoff_max:
                backoff = self._opts.backoff_initial  # a healthy stream earns a fast retry
            # Jitter keeps two members that lost each other from redialling in lock step.
            pause = backoff * (0.8 + 0.4 * self._rng.random())
            backoff = min(backoff * 2, self._opts.backoff_max)
            self._redial.clear()
            try:
                async with asyncio.timeout(pause):
                    await self._redial.wait()
                backoff = self._opts.backoff_initial
            except TimeoutError:
                pass

    def peer_is_back(self) -> None:
        """The peer just opened its stream to us: it runs, so a backoff toward it ends now.

        Our stream to a peer that was stopped (SIGSTOP) for long is torn down and redialled
        with backoff; without this, the resumed peer would hear nothing from us (a leader's
        heartbeats) for up to a backoff plus a dial, and could pre-campaign meanwhile. etcd's
        streams are dialled by the receiving side, so a resumed follower gets them at once.
        """
        if self.state is StreamState.DISCONNECTED:
            self._redial.set()

    async def _stream_once(self, tls: ssl.SSLContext | bool) -> float | None:
        """One dial and, if accepted, the stream's life. Returns seconds connected, or None."""
        loop = asyncio.get_running_loop()
        try:
            dialled = await dial_stream(
                self.url,
                wire.STREAM_PATH,
                self._stream_headers,
                tls=tls,
                timeout=self._opts.dial_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self._dial_failed(f"{type(exc).__name__}: {exc}")
            return None
        if isinstance(dialled, Refused):
            self._refused(dialled.status, dialled.reason)
            return None
        sock = dialled.transport
        try:
            self._socket = sock
            self._last_write = loop.time()
            self._stream = dialled
            self._connected()
            started = loop.time()
            self.flush()  # what was queued while dialling
            pump = asyncio.create_task(self._pump(sock), name=f"{self.url}-pump")
            try:
                # The receiver sends nothing after its 101: the future ends with the
                # connection (EOF, reset, or our own close of a stuck stream).
                await asyncio.wait([pump, dialled.closed], return_when=asyncio.FIRST_EXCEPTION)
                if pump.done() and not pump.cancelled():
                    pump.result()  # a pump that failed fails the stream task, loudly
                await dialled.closed
                why = "peer closed the stream"
            except OSError as exc:
                why = f"{type(exc).__name__}: {exc}"
            finally:
                self._socket = None
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            self._disconnected(self._reset_reason or why)
            return loop.time() - started
        finally:
            self._socket = None
            self._stream = None
            self._reset_reason = ""
            if not sock.is_closing():
                sock.close()

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
        repeated = self._dial_failing and why == self._dial_error
        level = logging.DEBUG if repeated else logging.WARNING
        self._dial_failing = True
        self._dial_error = why
        log.log(
            level,
            "failed to dial peer stream remote-peer-id=%s url=%s error=%r",
            wire.id_hex(self.peer_id),
            self.url,
            why,
            extra={"fields": {**self._log_fields, "error": why}},
        )

    def _refused(self, status: int, reason: str) -> None:
        if status == 410:
            self._local.removed()  # the peer says this member was removed from the cluster
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

    async def run_prober(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        """Probe the peer every interval and right after connecting, and observe the
        smoothed RTT on etcd's cadence (both end when this task is cancelled)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(
                run_monitor(self.rtt, self._rtt_timing, self._observe_rtt, asyncio.sleep)
            )
            await self._probe_forever(session)

    def _observe_rtt(self, srtt: float) -> None:
        """A monitor check: the SRTT into etcd_network_peer_round_trip_time_seconds{To}."""
        self.stats.srtt_seconds = srtt
        try:
            self._observer().on_rtt(self.peer_id, srtt)
        except Exception:
            log.exception("RTT observer failed remote-peer-id=%s", wire.id_hex(self.peer_id))

    async def _probe_forever(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        while True:
            try:
                async with asyncio.timeout(self._probe_interval):
                    await self._probe_now.wait()
            except TimeoutError:
                pass
            self._probe_now.clear()
            await self._probe_once(session)

    def _reset_stuck_stream(self) -> None:
        """Tear down a stream whose peer stopped answering: its writes only fill buffers."""
        stream = self._stream
        if stream is None or self._reset_reason:
            return
        self._reset_reason = f"peer answered no probe {self._probe_timeouts} times in a row"
        log.warning(
            "resetting stuck peer stream remote-peer-id=%s reason=%r",
            wire.id_hex(self.peer_id),
            self._reset_reason,
            extra={"fields": self._log_fields},
        )
        # abort, not close: a stopped peer reads nothing, so a close would wait for our
        # buffered writes to drain; the stream task sees the end at once and redials
        stream.transport.abort()

    async def _probe_once(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        """`session`: the aiohttp session for probes over HTTP, made on first use."""
        fault = self.fault
        if fault.drop:  # a partitioned peer answers no probe
            self.stats.probe_failures += 1
            self.rtt.record(False)
            return
        helper = self.probe_helper
        loop = asyncio.get_running_loop()
        if not self._probe_upgrades and loop.time() >= self._probe_upgrade_retry_at:
            self._probe_upgrades = True
            self._probe_upgrade_retry_at = math.inf
        if self._probe_upgrades and helper is not None and helper.running:
            outcome = await helper.probe(
                self.peer_id,
                self.url,
                self._headers,
                self._opts.probe_timeout,
                fault.delay_seconds,
            )
            if outcome is not None and outcome.unsupported:
                self._probe_upgrades = False
                self._probe_upgrade_retry_at = loop.time() + PROBE_UPGRADE_RETRY_SECONDS
                log.info(
                    "peer does not upgrade probes; probing over HTTP remote-peer-id=%s why=%r",
                    wire.id_hex(self.peer_id),
                    outcome.why,
                    extra={"fields": self._log_fields},
                )
            elif outcome is not None:
                self._record_probe(outcome)
                return
        await self._probe_over_http(session(), fault)

    async def _probe_over_http(self, session: aiohttp.ClientSession, fault: PeerFault) -> None:
        """The probe on the event loop (TLS links): its RTT includes both loops' queues."""
        import aiohttp  # imported once the peers are up (httphead.py)

        loop = asyncio.get_running_loop()
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
            timed_out = isinstance(exc, TimeoutError)
            why = f"{type(exc).__name__}: {exc}"
            self._record_probe(ProbeOutcome(False, why=why, timed_out=timed_out))
            return
        self._record_probe(ProbeOutcome(ok, loop.time() - started, why))

    def _record_probe(self, outcome: ProbeOutcome) -> None:
        """Count a probe's outcome; two timeouts in a row reset a stuck stream."""
        self.rtt.record(outcome.ok, outcome.rtt)
        if not outcome.ok:
            if outcome.timed_out:
                self._probe_timeouts += 1
                if self._probe_timeouts >= STUCK_PROBE_TIMEOUTS:
                    self._reset_stuck_stream()
            self.stats.probe_failures += 1
            if not self._probe_failing:
                log.warning(
                    "prober detected unhealthy status remote-peer-id=%s error=%r",
                    wire.id_hex(self.peer_id),
                    outcome.why,
                    extra={"fields": {**self._log_fields, "error": outcome.why}},
                )
            self._probe_failing = True
            return
        rtt = outcome.rtt
        self._probe_timeouts = 0
        self._probe_failing = False
        self.stats.probes_ok += 1
        self.stats.last_rtt_seconds = rtt
        try:
            self._observer().on_probe(self.peer_id, rtt)
        except Exception:
            log.exception("probe observer failed remote-peer-id=%s", wire.id_hex(self.peer_id))
