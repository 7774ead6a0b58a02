"""`Transport`: the one object the server talks to for everything that crosses the network.

It owns one `PeerSender` per peer (stream + prober tasks), snapshot uploads in flight,
the `Receiver` handlers, the HTTP client sessions, and the `PeerClient` for requests
that are not Raft messages (member info, calls forwarded to the leader). Every task it
starts is tracked and cancelled by `stop()`; a task that dies of an exception is logged
at ERROR and reported through `on_fatal`, never lost.

Callbacks run on the event loop. `on_unreachable` is deferred with `call_soon` and
coalesced per peer, so the core is never re-entered from inside `send()`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from node.raft.messages import Message, MessageType, Snapshot
from node.transport import wire
from node.transport.local import LocalMember
from node.transport.options import TransportOptions
from node.transport.peer import PeerSender, StreamState
from node.transport.peerclient import PeerClient
from node.transport.prober import ProbeHelper
from node.transport.receiver import Receiver
from node.transport.snapshot import SnapshotError, send_snapshot
from node.transport.stats import NO_FAULT, NullObserver, PeerFault, PeerStats, TransportObserver

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Coroutine, Iterable, Mapping

    import aiohttp
    from aiohttp import web

    from node.transport.snapshot import Body

log = logging.getLogger(__name__)


class Transport:
    """Peer messaging for one member: long-lived batched streams, probes, snapshots, faults."""

    def __init__(
        self,
        local_id: int,
        cluster_id: int,
        peers: dict[int, str],
        on_message: Callable[[Message], None],
        on_snapshot: Callable[[Message, str], None] | None,
        on_unreachable: Callable[[int], None] | None,
        on_snapshot_status: Callable[[int, bool], None] | None,
        snapshot_dir: str,
        heartbeat_interval: float = 0.1,
        *,
        options: TransportOptions | None = None,
        observer: TransportObserver | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        on_removed: Callable[[], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        election_timeout: float | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        on_active: Callable[[int], None] | None = None,
    ) -> None:
        """`client_ssl_context` dials other members' client URLs (calls forwarded to the
        leader); `ssl_context` dials their peer URLs. `on_active(peer)`: our stream to
        `peer` connected (again)."""
        self.local_id = local_id
        # https peers: verify their certificate (CA + host name), present ours (node/tls.py)
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self.cluster_id = cluster_id
        self._opts = options or TransportOptions()
        self._opts.validate()
        self._on_message = on_message
        self._on_snapshot = on_snapshot
        self._on_unreachable = on_unreachable
        self._on_active = on_active
        self._on_snapshot_status = on_snapshot_status
        self._on_fatal = on_fatal
        self._observer: TransportObserver = observer or NullObserver()
        self._snapshot_dir = snapshot_dir
        self._stats: dict[int, PeerStats] = {}
        self._senders: dict[int, PeerSender] = {}
        self._local = local = LocalMember(
            local_id,
            cluster_id,
            self._opts,
            heartbeat_interval,
            self._get_observer,
            on_removed or (lambda: None),
        )
        for peer_id, url in peers.items():
            if peer_id == local_id:
                continue  # a member does not talk to itself over the network
            self._stats[peer_id] = PeerStats()
            self._senders[peer_id] = self._new_sender(peer_id, url)
        self._prober_tasks: dict[int, asyncio.Task[None]] = {}
        self._receiver = Receiver(
            local,
            stats=self._stats,
            snapshot_dir=snapshot_dir,
            deliver=self._deliver,
            deliver_snapshot=self._deliver_snapshot,
            outbound_fault=self._outbound_fault,
            # A member's stream that spoke within an election timeout is not displaced.
            takeover_after=election_timeout,
            on_stream_accepted=self._peer_is_back,
        )
        # Times our probes and answers the peers' ones outside this interpreter (prober.py).
        self._probe_helper = ProbeHelper()
        self._receiver.probe_helper = self._probe_helper
        # Every other request to another member (member info, forwarding to the leader).
        self.client = PeerClient(
            {p: url for p, url in peers.items() if p != local_id},
            peer_ssl=ssl_context,
            client_ssl=client_ssl_context,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        # Probes over HTTP and snapshots; made on first use, so aiohttp is not imported
        # before the streams are up (streams dial on plain asyncio: dial.py).
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._snapshots: dict[int, asyncio.Task[None]] = {}
        self._snapshot_done_calls: dict[int, list[Callable[[], None]]] = {}  # send_snapshot's
        self._stream_tasks: dict[int, asyncio.Task[None]] = {}
        self._unreachable_pending: set[int] = set()
        self._unknown_warned: set[int] = set()
        self._running = False
        self._stopped = False
        self._stop_done: asyncio.Event | None = None
        # Probing starts with the transport unless deferred (`defer_probing`) to a member's
        # `start_probing`, once its start-up's critical part is over.
        self._probing = asyncio.Event()
        self._probing_deferred = False
        self._fields = {
            "local-member-id": wire.id_hex(local_id),
            "cluster-id": wire.id_hex(cluster_id),
        }

    # --------------------------------------------------------------------------- lifecycle

    def add_routes(self, app: web.Application) -> None:
        """Register the receiver endpoints on the member's peer listener (before it starts)."""
        self._receiver.add_routes(app)

    def open_raw_stream(
        self, headers: Mapping[str, str], transport: asyncio.Transport
    ) -> asyncio.Protocol | None:
        """A stream request read on plain asyncio by the peer port (receiver.py)."""
        return self._receiver.open_raw_stream(headers, transport)

    def answer_raw_probe(self, headers: Mapping[str, str], transport: asyncio.Transport) -> bool:
        """An upgraded probe read on plain asyncio by the peer port (receiver.py)."""
        return self._receiver.answer_raw_probe(headers, transport)

    def receive_raw_snapshot(
        self, headers: Mapping[str, str], transport: asyncio.BaseTransport, content: Body
    ) -> asyncio.Future[tuple[int, str]]:
        """A snapshot upload read on plain asyncio by the peer port (receiver.py)."""
        return self._receiver.receive_raw_snapshot(headers, transport, content)

    def _http_session(self) -> aiohttp.ClientSession:
        """The session for probes over HTTP and snapshot uploads, made on first use."""
        if self._session is None:
            import aiohttp  # after the streams are up (httphead.py)

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
            )
        return self._session

    def defer_probing(self) -> None:
        """Hold RTT probes and the probe process back until `start_probing` (call before
        `start`): three members restarted together share two cores, and the first
        election waits for the last of them to connect; the process's start (~40 ms of
        CPU) and the first probes can wait until then. Streams start as before."""
        if not self._running:
            self._probing_deferred = True
            self._probe_helper.defer()

    def start_probing(self) -> None:
        """Start the probe process and let every peer's prober run (idempotent)."""
        self._probing_deferred = False
        if self._running and any(s.url.startswith("http://") for s in self._senders.values()):
            self._probe_helper.start()
        self._probing.set()

    async def start(self) -> None:
        """Start a stream and a prober per peer. Idempotent."""
        if self._running or self._stopped:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        if not self._probing_deferred:
            self._probing.set()
        self._receiver.running = True
        for peer_id, fault in self.faults().items():
            self._probe_helper.set_fault(peer_id, fault)
        for peer_id in self._senders:
            self._start_peer(peer_id)
        log.info(
            "started peer transport local-member-id=%s peers=%s",
            wire.id_hex(self.local_id),
            ",".join(wire.id_hex(p) for p in self._senders),
            extra={"fields": self._fields},
        )

    def _new_sender(self, peer_id: int, url: str) -> PeerSender:
        return PeerSender(
            self._local,
            peer_id=peer_id,
            url=url,
            stats=self._stats[peer_id],
            report_unreachable=self._report_unreachable,
            report_active=self._report_active,
        )

    def _start_peer(self, peer_id: int) -> None:
        sender, name = self._senders[peer_id], wire.id_hex(peer_id)
        self._attach_prober(sender)
        self._stream_tasks[peer_id] = self._spawn(
            sender.run_stream(self._ssl), f"raft-stream-{name}"
        )
        self._prober_tasks[peer_id] = self._spawn(self._run_prober(sender), f"raft-prober-{name}")

    async def _run_prober(self, sender: PeerSender) -> None:
        await self._probing.wait()  # at once unless probing is deferred
        await sender.run_prober(self._http_session)

    # --------------------------------------------------------------------------- membership

    def add_peer(self, peer_id: int, url: str) -> None:
        """A member joined (or moved to `url`): stream to it and accept its streams."""
        if peer_id == self.local_id:
            return
        current = self._senders.get(peer_id)
        if current is not None and current.url == url:
            return
        if current is not None:
            self.remove_peer(peer_id, forget=False)
        self._receiver.removed.discard(peer_id)
        self._stats.setdefault(peer_id, PeerStats())
        self._senders[peer_id] = self._new_sender(peer_id, url)
        self.client.set_peer_url(peer_id, url)
        if self._running:
            self._start_peer(peer_id)
        log.info(
            "added peer remote-peer-id=%s url=%s",
            wire.id_hex(peer_id),
            url,
            extra={"fields": self._fields},
        )

    def remove_peer(self, peer_id: int, *, forget: bool = True) -> None:
        """A member left: stop its stream and prober; with `forget`, its streams are
        refused from now on with 410 Gone, which stops it when it comes back."""
        sender = self._senders.pop(peer_id, None)
        if sender is not None:
            sender.discard()
            sender.request_close()
        for tasks in (self._stream_tasks, self._prober_tasks):
            task = tasks.pop(peer_id, None)
            if task is not None:
                task.cancel()
        if forget:
            self._receiver.removed.add(peer_id)
            self._receiver.close_peer(peer_id)
            self.client.set_peer_url(peer_id, None)
            log.info(
                "removed peer remote-peer-id=%s",
                wire.id_hex(peer_id),
                extra={"fields": self._fields},
            )

    async def stop(self) -> None:
        """Close streams both ways, cancel every task, close the session. Idempotent."""
        if self._stopped:
            if self._stop_done is not None:
                await self._stop_done.wait()
            return
        self._stopped = True
        self._stop_done = asyncio.Event()
        try:
            self._running = False
            self._receiver.running = False
            # Give connected streams a moment to end their bodies cleanly (the receiver
            # then sees EOF, not a reset, and counts no failure); the rest is cancelled.
            streams = [
                self._stream_tasks[peer_id]
                for peer_id, sender in self._senders.items()
                if sender.state is StreamState.CONNECTED and peer_id in self._stream_tasks
            ]
            for sender in self._senders.values():
                sender.discard()
                sender.request_close()
            if streams:
                await asyncio.wait(streams, timeout=self._opts.dial_timeout)
            self._receiver.close_all()
            await self._receiver.streams_ended(self._opts.dial_timeout)
            self._probe_helper.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()
            await self.client.close()
            log.info(
                "stopped peer transport local-member-id=%s",
                wire.id_hex(self.local_id),
                extra={"fields": self._fields},
            )
        finally:
            self._stop_done.set()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            if self._running and not task.get_name().startswith("raft-snapshot-"):
                log.error("transport task exited unexpectedly task=%s", task.get_name())
            return
        log.error(
            "transport task died task=%s",
            task.get_name(),
            exc_info=exc,
            extra={"fields": self._fields},
        )
        if self._on_fatal is not None:
            self._on_fatal(exc)

    # --------------------------------------------------------------------------- sending

    def send(self, messages: Iterable[Message]) -> None:
        """Write messages to their peers' sockets (one write per peer) and return at once.

        Never awaits the network: a write only hands bytes to the kernel; messages for a
        stream still connecting, or held by a delay fault, wait in the peer's queue.

        Messages to unknown peers, or sent while the transport is not running, are
        dropped (Raft tolerates loss). A MsgSnap is streamed over /raft/snapshot with
        its in-memory `snapshot.data`; use `send_snapshot` to stream a file instead.
        """
        if not self._running or self._loop is None:
            return
        now = self._loop.time()
        senders = self._senders
        touched: list[PeerSender] = []
        for msg in messages:
            sender = senders.get(msg.to)
            if sender is None:
                self._warn_unknown(msg)
                continue
            if msg.type is MessageType.MsgSnap:
                data = msg.snapshot.data if msg.snapshot is not None else b""
                self._start_snapshot(sender, msg, data)
                continue
            sender.enqueue(msg, now)
            if sender not in touched:
                touched.append(sender)
        for sender in touched:  # one write per peer for the whole batch
            sender.flush()

    def send_snapshot(
        self, msg: Message, db_path: str, *, on_done: Callable[[], None] | None = None
    ) -> None:
        """Stream the db image at `db_path` with `msg` (a MsgSnap) to `msg.to`.

        Returns at once; `on_snapshot_status(msg.to, failed)` reports the outcome once the
        receiver has the file durably (or the upload failed). One snapshot per peer is in
        flight at a time; a second one fails immediately. `on_done` is called once the
        image is no longer read, whatever the outcome (the caller may delete it then).
        """
        if on_done is not None:
            self._run_when_done(msg.to, on_done)
        if not self._running:
            self._snapshot_done(msg.to)
            return
        sender = self._senders.get(msg.to)
        if sender is None:
            self._warn_unknown(msg)
            self._snapshot_done(msg.to)
            return
        self._start_snapshot(sender, msg, db_path)
        if msg.to not in self._snapshots:  # refused before any byte was read
            self._snapshot_done(msg.to)

    def _run_when_done(self, peer_id: int, call: Callable[[], None]) -> None:
        self._snapshot_done_calls.setdefault(peer_id, []).append(call)

    def _snapshot_done(self, peer_id: int) -> None:
        for call in self._snapshot_done_calls.pop(peer_id, []):
            try:
                call()
            except Exception:
                log.exception("snapshot done callback failed remote-peer-id=%s", peer_id)

    def _start_snapshot(self, sender: PeerSender, msg: Message, source: str | bytes) -> None:
        peer_id = sender.peer_id
        if msg.type is not MessageType.MsgSnap or msg.snapshot is None:
            log.error("send_snapshot needs a MsgSnap with metadata type=%s", msg.type.name)
            self._finish_snapshot_later(peer_id, failed=True)
            return
        if peer_id in self._snapshots:
            log.warning(
                "snapshot already in flight to peer; failing the new one remote-peer-id=%s",
                wire.id_hex(peer_id),
                extra={"fields": self._fields},
            )
            sender.stats.snapshot_send_failures += 1
            self._finish_snapshot_later(peer_id, failed=True)
            return
        self._snapshots[peer_id] = self._spawn(
            self._run_snapshot(sender, msg, source), f"raft-snapshot-{wire.id_hex(peer_id)}"
        )

    async def _run_snapshot(self, sender: PeerSender, msg: Message, source: str | bytes) -> None:
        assert self._loop is not None
        peer_id = sender.peer_id
        stats = sender.stats
        started = self._loop.time()
        stats.snapshot_send_inflight += 1
        ok = False
        try:
            fault = sender.fault
            if fault.drop:
                raise SnapshotError("drop fault active")
            if fault.delay_seconds > 0.0:
                await asyncio.sleep(fault.delay_seconds)
            nbytes = await send_snapshot(
                self._http_session,
                sender.url,
                wire.stream_headers(self.local_id, peer_id, self.cluster_id),
                msg,
                source,
                chunk_size=self._opts.snapshot_chunk_size,
                dial_timeout=self._opts.dial_timeout,
                response_timeout=self._opts.snapshot_response_timeout,
            )
            stats.sent_bytes += nbytes
            ok = True
            meta = msg.snapshot.metadata if msg.snapshot is not None else None
            log.info(
                "sent snapshot remote-peer-id=%s index=%s bytes=%d",
                wire.id_hex(peer_id),
                meta.index if meta else 0,
                nbytes,
                extra={"fields": self._fields},
            )
        except SnapshotError as exc:
            log.warning(
                "failed to send snapshot remote-peer-id=%s error=%r",
                wire.id_hex(peer_id),
                str(exc),
                extra={"fields": self._fields},
            )
        finally:
            stats.snapshot_send_inflight -= 1
            self._snapshots.pop(peer_id, None)
            self._snapshot_done(peer_id)
        if ok:
            stats.snapshot_send_success += 1
        else:
            stats.snapshot_send_failures += 1
            self._report_unreachable(peer_id)  # as etcd: the follower goes back to probing
        try:
            self._observer.on_snapshot_sent(peer_id, self._loop.time() - started, ok)
        except Exception:
            log.exception("snapshot observer failed")
        self._snapshot_status(peer_id, failed=not ok)

    def _finish_snapshot_later(self, peer_id: int, *, failed: bool) -> None:
        if self._loop is not None:
            self._loop.call_soon(self._snapshot_status, peer_id, failed)

    def _snapshot_status(self, peer_id: int, failed: bool) -> None:
        if self._stopped or self._on_snapshot_status is None:
            return
        try:
            self._on_snapshot_status(peer_id, failed)
        except Exception:
            log.exception("on_snapshot_status failed remote-peer-id=%s", wire.id_hex(peer_id))

    def _warn_unknown(self, msg: Message) -> None:
        if msg.to in self._unknown_warned:
            return
        self._unknown_warned.add(msg.to)
        log.warning(
            "ignored message send request; unknown remote peer target type=%s to=%s",
            msg.type.name,
            wire.id_hex(msg.to),
            extra={"fields": self._fields},
        )

    def _attach_prober(self, sender: PeerSender) -> None:
        """Give a peer link the probe process, started with the first plain-http link
        once the transport runs (a peer added later goes through here too)."""
        sender.probe_helper = self._probe_helper
        if self._running and not self._probing_deferred and sender.url.startswith("http://"):
            self._probe_helper.start()

    def _peer_is_back(self, peer_id: int) -> None:
        """A peer's stream to us was accepted: our own stream to it may redial at once."""
        sender = self._senders.get(peer_id)
        if sender is not None:
            sender.peer_is_back()

    def _report_active(self, peer_id: int) -> None:
        if self._stopped or self._on_active is None or self._loop is None:
            return
        self._loop.call_soon(self._on_active, peer_id)  # outside the sender's own state change

    def _report_unreachable(self, peer_id: int) -> None:
        if self._stopped or self._on_unreachable is None or self._loop is None:
            return
        if peer_id in self._unreachable_pending:
            return
        self._unreachable_pending.add(peer_id)
        if len(self._unreachable_pending) == 1:
            self._loop.call_soon(self._flush_unreachable)

    def _flush_unreachable(self) -> None:
        pending = sorted(self._unreachable_pending)
        self._unreachable_pending.clear()
        if self._stopped or self._on_unreachable is None:
            return
        for peer_id in pending:
            try:
                self._on_unreachable(peer_id)
            except Exception:
                log.exception("on_unreachable failed remote-peer-id=%s", wire.id_hex(peer_id))

    # --------------------------------------------------------------------------- receiving

    def _deliver(self, msg: Message) -> None:
        try:
            self._on_message(msg)
        except Exception:
            log.exception("on_message failed type=%s from=%s", msg.type.name, wire.id_hex(msg.frm))

    async def _deliver_snapshot(self, msg: Message, path: str) -> None:
        """Hand a received image to the server; without on_snapshot, inline it (small images)."""
        if self._on_snapshot is not None:
            self._on_snapshot(msg, path)
            return
        data = await asyncio.to_thread(_read_file, path)
        meta = msg.snapshot.metadata if msg.snapshot is not None else None
        msg.snapshot = Snapshot(metadata=meta, data=data) if meta else Snapshot(data=data)
        self._on_message(msg)

    # ------------------------------------------------------------------ stats and faults

    def can_deliver(self, peer_id: int) -> bool:
        """Whether our stream to `peer_id` is up now: a message sent to it is written,
        not dropped (etcd_network_active_peers' notion of an active peer)."""
        stats = self._stats.get(peer_id)
        return stats is not None and stats.active

    def stats(self) -> dict[int, PeerStats]:
        """A copy of every peer's counters, for the exporter's scrape-time collector."""
        return {peer_id: copy.copy(s) for peer_id, s in self._stats.items()}

    def set_observer(self, observer: TransportObserver | None) -> None:
        """Bind the exporter's RTT/snapshot observer (may be done after construction)."""
        self._observer = observer or NullObserver()

    def _get_observer(self) -> TransportObserver:
        return self._observer

    def set_fault(self, peer_id: int, delay_seconds: float = 0.0, drop: bool = False) -> None:
        """Delay or drop everything this member sends to `peer_id` (lab fault injection)."""
        sender = self._senders.get(peer_id)
        if sender is None:
            raise ValueError(f"unknown peer {peer_id:x}")
        if delay_seconds < 0:
            raise ValueError("delay_seconds must be >= 0")
        fault = PeerFault(delay_seconds=float(delay_seconds), drop=bool(drop))
        sender.set_fault(fault)
        self._probe_helper.set_fault(peer_id, fault)
        log.info(
            "peer fault set remote-peer-id=%s delay=%.3fs drop=%s",
            wire.id_hex(peer_id),
            fault.delay_seconds,
            fault.drop,
            extra={"fields": self._fields},
        )

    def clear_faults(self) -> None:
        """Remove every fault: traffic to all peers flows normally again."""
        for sender in self._senders.values():
            if sender.fault.is_active():
                sender.set_fault(NO_FAULT)
        log.info("peer faults cleared", extra={"fields": self._fields})

    def _outbound_fault(self, peer_id: int) -> PeerFault:
        """The lab fault on traffic to `peer_id` (NO_FAULT for unknown members)."""
        sender = self._senders.get(peer_id)
        return sender.fault if sender is not None else NO_FAULT

    def faults(self) -> dict[int, PeerFault]:
        """Active faults by peer id (peers without a fault are absent)."""
        return {p: s.fault for p, s in self._senders.items() if s.fault.is_active()}

    @property
    def peer_ids(self) -> list[int]:
        return list(self._senders)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
