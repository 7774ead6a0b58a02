"""The member's driver: the only code that touches the Raft core.

One asyncio task owns the `RawNode`. Everything else (client handlers, the peer
transport, the tick timer) puts work into an inbox and wakes the loop; the loop
feeds the inbox to the core, then handles each `Ready` in etcd raftexample's
order:

    send requests  ->  persist (WAL write + ONE fdatasync)  ->  send
    messages_after_persist  ->  apply committed entries (into the backend's
    open SQLite batch)  ->  advance

The fdatasync runs on the loop thread while the disk is fast (a hop to a worker
thread and back costs more than a fast fsync) and in a worker thread when the
disk is slow or the lab slows it, so the loop keeps serving. A Ready with nothing
to persist applies first and sends after, so clients' answers leave before the
commit index goes to followers. Group commit falls out of this shape: while one
fsync runs, new proposals pile up in the inbox or the sockets and all of them go
out in the next Ready's single fsync.
Nothing is acknowledged to a client before the entry is committed (a majority
fsynced it) and applied here.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import itertools
import logging
import os
import random
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp

from node.mvcc import requests as rq
from node.mvcc.codec import encode_request
from node.mvcc.compactor import make_compactor
from node.mvcc.lease import Lessor
from node.mvcc.store import KVStore
from node.raft import (
    Config,
    MemoryStorage,
    ProposalDropped,
    RawNode,
    Ready,
    StateType,
)
from node.raft.messages import (
    ConfState,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from node.tls import any_https, client_context
from node.transport import Transport
from node.wal import WAL, Snapshotter, WALError

from . import errors as E

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.config import MemberConfig

log = logging.getLogger(__name__)

# The `op` of etcd_server_apply_duration_seconds, by the applied request's type; keyed on
# the request, not the response, so an apply that failed (no response) keeps its op.
_APPLY_OPS: dict[type, str] = {
    rq.PutRequest: "Put",
    rq.RangeRequest: "Range",
    rq.DeleteRangeRequest: "DeleteRange",
    rq.TxnRequest: "Txn",
    rq.CompactionRequest: "Compaction",
    rq.LeaseGrantRequest: "LeaseGrant",
    rq.LeaseRevokeRequest: "LeaseRevoke",
    rq.AlarmRequest: "Alarm",
}
MEMBER_INFO_PATH = "/raftmon/member"  # on the peer listener: name, id, client URLs
GRPC_OVERHEAD_BYTES = 512 * 1024  # etcd: max gRPC message = --max-request-bytes + 512 KiB
FSYNC_ON_LOOP_SECONDS = 0.002  # fsyncs faster than this block the loop less than a hop costs
SLOW_APPLY_SECONDS = 0.1  # etcd warns and counts applies slower than this
SLOW_READ_INDEX_SECONDS = 0.5  # etcd's readIndexRetryTime


def _expire(fut: asyncio.Future[Any]) -> None:
    """A request's timer fired before its answer: it fails with TimeoutError."""
    if not fut.done():
        fut.set_exception(TimeoutError())


@dataclass(slots=True)
class DriverCounters:
    """Plain counters the exporter reads at scrape time (no Prometheus here)."""

    proposals_failed: int = 0
    heartbeat_send_failures: int = 0
    slow_applies: int = 0
    slow_read_indexes: int = 0
    read_indexes_failed: int = 0
    leader_changes_seen: int = 0
    apply_seconds_total: float = 0.0
    snapshots_taken: int = 0
    snapshots_installed: int = 0


@dataclass(slots=True)
class Faults:
    """Lab faults active on this member (visible in /metrics under raftmon_)."""

    ticks_paused: bool = False


@dataclass(slots=True)
class _PendingRead:
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    started: float = 0.0
    attempted: float = 0.0  # last time a read index was requested for this batch


class RaftDriver:
    """Owns the Raft core, WAL, snapshots, transport and state machine of one member."""

    def __init__(
        self,
        cfg: MemberConfig,
        *,
        observer: Any = None,
    ) -> None:
        self.cfg = cfg
        self.member_id = cfg.member_id
        self.cluster_id = cfg.cluster_id
        self.observer = observer  # exporter hooks (wal fsync, backend commit, ...)
        self.counters = DriverCounters()
        self.faults = Faults()
        self.peer_ids = tuple(m.member_id for m in cfg.members if m.member_id != self.member_id)
        self.lead = 0
        self.role: StateType = StateType.StateFollower
        self.term = 0
        self.applied_index = 0
        self.snapshot_index = 0
        self.started_at = time.monotonic()

        wal_dir = os.path.join(cfg.member_dir, "wal")
        snap_dir = os.path.join(cfg.member_dir, "snap")
        os.makedirs(snap_dir, exist_ok=True)
        self.snapshotter = Snapshotter(snap_dir, observer=observer)
        self.kv = KVStore.open(
            os.path.join(snap_dir, "db"),
            quota_bytes=cfg.quota_backend_bytes,
            max_txn_ops=cfg.max_txn_ops,
            min_lease_ttl=max(2, -(-3 * cfg.election_timeout_ms // 2000)),
            observer=observer,
            batch_interval=cfg.backend_batch_interval_seconds,
            batch_limit=cfg.backend_batch_limit,
        )
        self.lessor = Lessor(self.kv)
        self.compactor = make_compactor(cfg.auto_compaction_mode, cfg.auto_compaction_retention)
        self.storage = MemoryStorage()
        self.wal = self._open_wal(wal_dir)
        self.wal.fsync_delay_seconds = cfg.wal_fsync_delay_seconds

        self.node = RawNode(
            Config(
                id=self.member_id,
                peers=tuple(m.member_id for m in cfg.members),
                election_tick=cfg.election_ticks,
                heartbeat_tick=1,
                rng=random.Random(self.member_id ^ time.time_ns()),
                check_quorum=True,
                pre_vote=True,
                applied=self.applied_index,
            ),
            self.storage,
        )
        # Dials to peers (streams, probes, snapshots, member info) verify the peer's
        # certificate against --peer-trusted-ca-file and present --peer-cert-file.
        self.peer_ssl = (
            client_context(cfg.peer_tls)
            if any_https(u for m in cfg.members for u in m.peer_urls)
            else None
        )
        self.transport = Transport(
            self.member_id,
            self.cluster_id,
            {m.member_id: m.peer_urls[0] for m in cfg.members if m.member_id != self.member_id},
            on_message=self._on_peer_message,
            on_snapshot=self._on_peer_snapshot,
            on_unreachable=self._on_unreachable,
            on_snapshot_status=self._on_snapshot_status,
            snapshot_dir=snap_dir,
            heartbeat_interval=cfg.tick_seconds,
            observer=observer,
            ssl_context=self.peer_ssl,
            election_timeout=cfg.election_timeout_ms / 1000.0,
        )

        # inbox: filled by handlers and the transport, drained only by the loop
        self._wake = asyncio.Event()
        self._ticks = 0
        self._inbox: list[Message] = []
        self._proposals: list[tuple[bytes, int]] = []
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._read_queue: list[asyncio.Future[None]] = []
        self._reads_in_flight: dict[bytes, _PendingRead] = {}
        self._read_wait_index: list[tuple[int, int, _PendingRead]] = []  # (index, seq, reads)
        self._read_seq = itertools.count()
        self._local_reports: list[Callable[[], None]] = []
        self._received_snapshots: dict[int, str] = {}
        self._id_prefix = (self.member_id & 0xFFFF) << 48 | (time.time_ns() & 0xFF) << 40
        self._next_id = itertools.count(1)
        self._last_tick = time.monotonic()
        self._leader_since = 0.0
        self._leader_elected_at = 0.0  # monotonic time a new non-zero leader was last seen
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.on_leader_change: list[Callable[[int, int], None]] = []
        self._client_urls: dict[int, list[str]] = {}
        self.installing_snapshot = False
        self._defrags_running = 0  # defragment() calls not finished (they queue on the store)
        self._persisting = False  # True while the loop awaits a WAL fsync
        # The quota check's database size, re-read after each backend commit (as etcd's
        # backend.Size(), updated when bbolt commits), not after every apply batch: a PRAGMA
        # and a stat cost about 50 µs, a quarter of an apply of one put.
        self.db_size = self.kv.db_total_size()
        self._db_size_commits = self.kv.commits
        self._request_timeout = cfg.request_timeout_seconds
        # The WAL's fsyncs run one at a time in their own thread (no context copy per call,
        # as asyncio.to_thread makes, and never queued behind a snapshot or a defrag).
        self._fsync_thread = concurrent.futures.ThreadPoolExecutor(1, "wal-fsync")

    # ---- start-up --------------------------------------------------------
    def _open_wal(self, wal_dir: str) -> WAL:
        """Create the WAL on first boot; otherwise replay it into MemoryStorage."""
        self.applied_index = self.kv.applied_index()
        newest = self.snapshotter.load_newest()
        if not WAL.exists(wal_dir):
            meta = f"{self.member_id:x}/{self.cluster_id:x}".encode()
            log.info(
                "bootstrapping new member",
                extra={"fields": {"local-member-id": f"{self.member_id:x}"}},
            )
            return WAL.create(
                wal_dir, meta, segment_size=self.cfg.wal_segment_bytes, observer=self.observer
            )
        snap_meta = newest[0] if newest else None
        wal, replay = WAL.open(
            wal_dir,
            snapshot=snap_meta,
            segment_size=self.cfg.wal_segment_bytes,
            observer=self.observer,
        )
        if snap_meta is not None and snap_meta.index > 0:
            self.storage.apply_snapshot(Snapshot(metadata=snap_meta))
            self.snapshot_index = snap_meta.index
        hard_state = replay.hard_state or HardState()
        last_index = replay.entries[-1].index if replay.entries else self.snapshot_index
        if self.applied_index > hard_state.commit:
            # Commit-only hard states are saved without an fsync (etcd's MustSync rule) and
            # SQLite commits with synchronous=NORMAL, so a power loss can keep the database's
            # applied index but not the commit that allowed it. Applied entries were
            # committed, and entries are fsynced before anyone learns of them, so the
            # commit index is raised to the applied one; an applied index past the log
            # means the WAL lost acknowledged entries: refuse to start.
            if self.applied_index > last_index:
                raise WALError(
                    f"database applied index {self.applied_index} is past the last WAL "
                    f"entry {last_index} in {wal_dir}: the WAL lost entries it had made durable"
                )
            log.warning(
                "raising commit index %d to the database's applied index %d",
                hard_state.commit,
                self.applied_index,
            )
            hard_state = replace(hard_state, commit=self.applied_index)
        if not hard_state.is_empty():
            self.storage.set_hard_state(hard_state)
        if replay.entries:
            self.storage.append(replay.entries)
        log.info(
            "restarting member",
            extra={
                "fields": {
                    "local-member-id": f"{self.member_id:x}",
                    "snapshot-index": self.snapshot_index,
                    "applied-index": self.applied_index,
                    "wal-entries": len(replay.entries),
                    "commit-index": hard_state.commit,
                }
            },
        )
        return wal

    async def start(self) -> None:
        await self.transport.start()
        loop = asyncio.get_running_loop()
        for coro in (self._run(), self._tick_loop(), self._housekeeping_loop()):
            task = loop.create_task(coro)
            task.add_done_callback(self._task_died)
            self._tasks.append(task)
        if len(self.cfg.members) == 1:
            self._local_reports.append(self.node.campaign)
            self._wake.set()

    def _task_died(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.critical("driver task died; stopping member", exc_info=exc)
            os._exit(70)  # a half-alive member is worse than a dead one

    async def stop(self) -> None:
        """Stop ticking and applying, then close transport, WAL and database (WAL last)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.transport.stop()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(E.etcd_error(E.STOPPED))
        self._fsync_thread.shutdown(wait=True)  # a save in flight finishes before the close
        self.kv.close()
        self.wal.close()

    # ---- inputs from the outside world ------------------------------------
    def _on_peer_message(self, msg: Message) -> None:
        if self._persisting:
            # The loop is waiting on an fsync: step now, so e.g. follower acks are counted
            # the moment our own write is durable (the core allows step between ready
            # and advance; what it produces goes out in the next Ready).
            self._step(msg)
        else:
            self._inbox.append(msg)
        self._wake.set()

    def _step(self, msg: Message) -> None:
        try:
            self.node.step(msg)
        except Exception as err:  # a bad peer message must not kill the member
            log.warning(
                "dropped peer message",
                extra={"fields": {"type": msg.type.name, "error": str(err)}},
            )

    def _on_peer_snapshot(self, msg: Message, path: str) -> None:
        assert msg.snapshot is not None
        self._received_snapshots[msg.snapshot.metadata.index] = path
        self._on_peer_message(msg)

    def _on_unreachable(self, peer: int) -> None:
        self._local_reports.append(lambda: self.node.report_unreachable(peer))
        self._wake.set()

    def _on_snapshot_status(self, peer: int, failed: bool) -> None:
        self._local_reports.append(lambda: self.node.report_snapshot(peer, failed))
        self._wake.set()

    def next_request_id(self) -> int:
        return self._id_prefix | next(self._next_id)

    async def propose(self, request: Any) -> Any:
        """Replicate one request through Raft; return the state machine's response.

        Raises EtcdError: no leader (at once), request timed out (after the
        request timeout), or the error the state machine produced when applying.
        """
        if self._stopping:
            raise E.etcd_error(E.STOPPED)
        if self.lead == 0:
            self.counters.proposals_failed += 1
            raise E.etcd_error(E.NO_LEADER)
        request_id = self.next_request_id()
        try:
            data = encode_request(request_id, request)
        except Exception as err:  # a value no etcd field can hold (int64 overflow, ...)
            raise E.invalid_argument(f"raftmon: request cannot be encoded: {err}") from None
        if len(data) > self.cfg.max_request_bytes:
            grpc_limit = self.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES
            if len(data) > grpc_limit:  # etcd's gRPC layer refuses it before the server sees it
                raise E.message_too_large(len(data), grpc_limit)
            raise E.etcd_error(E.REQUEST_TOO_LARGE)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiters[request_id] = fut
        self._proposals.append((data, request_id))
        self._wake.set()
        started = time.monotonic()
        # A timer on the future itself: cheaper per request than wait_for's wrapping.
        timer = loop.call_later(self._request_timeout, _expire, fut)
        try:
            return await fut
        except TimeoutError:
            self.counters.proposals_failed += 1
            raise E.etcd_error(self._timeout_message(started)) from None
        finally:
            timer.cancel()
            self._waiters.pop(request_id, None)

    def _timeout_message(self, started: float) -> str:
        """The message of a proposal that timed out, chosen as etcd's parseProposeCtxErr does.

        "possibly due to previous leader failure" only if a new leader was elected after
        the request started, and less than two election timeouts after it (so the old
        leader failed while the request was in flight). No leader now, or one leader
        throughout, is a plain "request timed out": losing the leader is not blamed
        until a new one is elected, as etcd does.
        """
        elected = self._leader_elected_at  # etcd's leadElectedTime
        window = 2 * self.cfg.election_ticks * self.cfg.tick_seconds
        if started < elected < started + window:
            return E.TIMEOUT_LEADER_FAIL
        return E.REQUEST_TIMEOUT

    def propose_nowait(self, request: Any) -> None:
        """Fire-and-forget proposal for the member's own housekeeping (lease expiry, compaction)."""
        if self.lead == 0:
            return
        self._proposals.append((encode_request(self.next_request_id(), request), 0))
        self._wake.set()

    async def read_barrier(self) -> None:
        """Wait until a linearizable read may be served locally (ReadIndex, Raft §6.4).

        Concurrent callers share one read index request, as etcd batches them.
        """
        if self.lead == 0:
            self.counters.read_indexes_failed += 1
            raise E.etcd_error(E.NO_LEADER)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._read_queue.append(fut)
        self._wake.set()
        timer = loop.call_later(self._request_timeout, _expire, fut)
        try:
            await fut
        except TimeoutError:
            self.counters.read_indexes_failed += 1
            raise E.etcd_error(E.REQUEST_TIMEOUT) from None
        finally:
            timer.cancel()

    def transfer_leadership(self, to: int) -> None:
        self._local_reports.append(lambda: self.node.transfer_leader(to))
        self._wake.set()

    # ---- the loop -------------------------------------------------------
    async def _tick_loop(self) -> None:
        interval = self.cfg.tick_seconds
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # fell behind (paused process, overloaded loop): don't burst
                next_at = now + interval
            if not self.faults.ticks_paused:
                self._ticks += 1
                self._wake.set()
            if self.observer is not None:
                self.observer.on_loop_lag(max(0.0, now - (next_at - interval)))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._feed_core()
            while self.node.has_ready():
                await self._handle_ready(self.node.ready())
                self._feed_core()

    def _feed_core(self) -> None:
        """Hand everything queued since the last iteration to the core, in arrival order."""
        node = self.node
        ticks_seen = self._ticks > 0
        if self._ticks:
            ticks, self._ticks = self._ticks, 0
            now = time.monotonic()
            if (
                self.role == StateType.StateLeader
                and now - self._last_tick > 2 * self.cfg.tick_seconds
            ):
                # etcd: "leader failed to send out heartbeat on time" (likely a slow disk)
                self.counters.heartbeat_send_failures += 1
            self._last_tick = now
            for _ in range(ticks):
                node.tick()
            self.kv.commit_if_due()  # an idle member's last applied entries get committed
            self._refresh_db_size()
        if self._local_reports:
            reports, self._local_reports = self._local_reports, []
            for report in reports:
                with contextlib.suppress(ProposalDropped):
                    report()
        if self._inbox:
            inbox, self._inbox = self._inbox, []
            for msg in inbox:
                self._step(msg)
        if self._proposals:
            proposals, self._proposals = self._proposals, []
            for data, request_id in proposals:
                try:
                    node.propose(data)
                except ProposalDropped as err:
                    fut = self._waiters.get(request_id)
                    if fut is not None and not fut.done():
                        self.counters.proposals_failed += 1
                        fut.set_exception(
                            E.etcd_error(E.NO_LEADER if self.lead == 0 else E.REQUEST_TIMEOUT)
                        )
                    log.debug("proposal dropped", extra={"fields": {"reason": str(err)}})
        if self._read_queue:
            batch = _PendingRead(self._read_queue, time.monotonic(), time.monotonic())
            self._read_queue = []
            self._request_read_index(batch)
        if self._reads_in_flight and ticks_seen:
            self._retry_slow_read_indexes()

    def _request_read_index(self, batch: _PendingRead) -> None:
        ctx = next(self._read_seq).to_bytes(8, "big")
        try:
            self.node.read_index(ctx)
            self._reads_in_flight[ctx] = batch
        except ProposalDropped:
            for fut in batch.futures:
                if not fut.done():
                    self.counters.read_indexes_failed += 1
                    fut.set_exception(E.etcd_error(E.NO_LEADER))

    def _retry_slow_read_indexes(self) -> None:
        """etcd re-sends a read index unanswered after 500 ms (the request or answer was lost)."""
        now = time.monotonic()
        for ctx, batch in list(self._reads_in_flight.items()):
            if now - batch.attempted < SLOW_READ_INDEX_SECONDS:
                continue
            del self._reads_in_flight[ctx]
            batch.futures = [f for f in batch.futures if not f.done()]
            if batch.futures:
                self.counters.slow_read_indexes += 1
                batch.attempted = now
                self._request_read_index(batch)

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.role)
        if rd.hard_state is not None:
            self.term = rd.hard_state.term
        snapshot = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        if rd.entries or snapshot is not None or rd.must_sync or not rd.committed_entries:
            # 1. requests may leave while we persist (leader appends in parallel with followers)
            self._send(rd.messages)
            later = None
        else:
            # Nothing to persist, entries to apply (on a leader: a commit, and the
            # commit index going out to followers): apply first, so the clients' answers
            # are written before the followers' messages and before their wake-ups
            # compete for the CPU. Sending later is always safe.
            later = rd.messages
        # 2. persist: one write, one fdatasync (on the loop while the disk is fast)
        if snapshot is not None:
            await self._persist_snapshot(snapshot)
        if rd.must_sync and self._fsync_on_loop():
            # The appends are already on the wire (send writes to the sockets at once),
            # so followers persist while we do.
            self.wal.save(rd.hard_state, rd.entries, True)
        elif rd.must_sync:
            self._persisting = True
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._fsync_thread, self.wal.save, rd.hard_state, rd.entries, True
                )
            finally:
                self._persisting = False
        elif rd.entries:
            self.wal.save(rd.hard_state, rd.entries, False)
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        # 3. responses that promise durability leave only now (Raft thesis §3.8)
        acks = [m for m in rd.messages_after_persist if m.to != self.member_id]
        if acks:
            self._send(acks)  # written at once: the leader is not waiting for our apply
        # 4. apply
        if snapshot is not None:
            await self._install_snapshot(snapshot)
        if rd.committed_entries:
            self._apply(rd)
            if later is not None:
                # One turn of the loop: the answered handlers write their responses
                # now, before the commit-index save and the sends below.
                await asyncio.sleep(0)
        if not rd.must_sync and not rd.entries and rd.hard_state is not None:
            # Only the commit index moved: a small write with no fsync (etcd's MustSync
            # rule), after the apply, so the answers do not wait for it.
            self.wal.save(rd.hard_state, rd.entries, False)
        for rs in rd.read_states:
            self._read_state(rs.index, rs.request_ctx)
        # 5. advance: the core may now count our own append and step local responses
        self.node.advance(rd)
        self._release_reads()
        if later:
            self._send(later)
        await self._maybe_snapshot()

    def _fsync_on_loop(self) -> bool:
        """Fsync on the loop thread while the disk is fast and no lab delay is set.

        Handing a save to the worker thread and back costs about 0.2 ms of wake-ups
        (measured on 2 vCPUs, more than the fdatasync itself), on every follower's
        path from append to ack. A slow disk (last fsync over FSYNC_ON_LOOP_SECONDS) or
        an injected delay moves the saves to the thread, so the loop keeps serving.
        """
        wal = self.wal
        return wal.fsync_delay_seconds <= 0.0 and wal.last_fsync_seconds < FSYNC_ON_LOOP_SECONDS

    def _on_soft_state(self, lead: int, role: StateType) -> None:
        if lead != self.lead:
            if lead != 0:
                self.counters.leader_changes_seen += 1
                self._leader_elected_at = time.monotonic()  # etcd's leadElectedTime
            log.info(
                "leader changed",
                extra={
                    "fields": {
                        "old-leader": f"{self.lead:x}",
                        "new-leader": f"{lead:x}",
                        "term": self.term,
                    }
                },
            )
            for callback in self.on_leader_change:
                callback(self.lead, lead)
            if lead == 0:
                self._fail_reads(E.NO_LEADER)
        if role == StateType.StateLeader and self.role != StateType.StateLeader:
            self.lessor.promote(time.monotonic())
            self._leader_since = time.monotonic()
            self._last_tick = time.monotonic()
        elif role != StateType.StateLeader and self.role == StateType.StateLeader:
            self.lessor.demote()
        self.lead, self.role = lead, role

    def _send(self, messages: list[Message]) -> None:
        if not messages:
            return
        plain = []
        for msg in messages:
            if msg.type == MessageType.MsgSnap:
                self._send_snapshot(msg)
            else:
                plain.append(msg)
        if plain:
            self.transport.send(plain)

    def _send_snapshot(self, msg: Message) -> None:
        newest = self.snapshotter.load_newest()
        if newest is None:
            self.node.report_snapshot(msg.to, True)
            return
        meta, db_path = newest
        self.transport.send_snapshot(
            Message(
                type=MessageType.MsgSnap,
                to=msg.to,
                frm=msg.frm,
                term=msg.term,
                snapshot=Snapshot(metadata=meta),
            ),
            db_path,
        )

    def _refresh_db_size(self) -> None:
        """Re-read the database size if the backend committed since it was last read."""
        if self.kv.commits != self._db_size_commits:
            self._db_size_commits = self.kv.commits
            self.db_size = self.kv.db_total_size()

    def _apply(self, rd: Ready) -> None:
        started = time.perf_counter()
        batch = [(e.index, e.data) for e in rd.committed_entries if e.index > self.applied_index]
        if batch:
            results = self.kv.apply_batch(batch)
            waiters = self._waiters
            for result in results:
                fut = waiters.get(result.request_id)
                if fut is not None and not fut.done():
                    if result.error is not None:
                        fut.set_exception(E.from_exception(result.error))
                    else:
                        fut.set_result(result.response)
            self.applied_index = batch[-1][0]
            self._refresh_db_size()
            if results and self.observer is not None:
                self._observe_applied(results, time.perf_counter() - started)
        elif rd.committed_entries:
            self.applied_index = max(self.applied_index, rd.committed_entries[-1].index)
        took = time.perf_counter() - started
        self.counters.apply_seconds_total += took
        if took > SLOW_APPLY_SECONDS:
            self.counters.slow_applies += 1
            log.warning(
                "apply request took too long",
                extra={"fields": {"took": f"{took:.3f}s", "entries": len(batch)}},
            )
        if self.observer is not None:
            self.observer.on_apply(took)

    def _observe_applied(self, results: list[Any], seconds: float) -> None:
        """Per-request apply durations (the batch's time shared out) and lease events."""
        each = seconds / len(results)
        observer = self.observer
        for result in results:
            op = _APPLY_OPS.get(type(result.request))
            if op is None:  # an undecodable entry: nothing etcd would time
                continue
            ok = result.error is None
            observer.on_apply_request(op, ok, each)  # success="false" when it failed
            if not ok:
                continue
            if op == "LeaseGrant":
                observer.on_lease_granted(float(result.response.ttl))
            elif op == "LeaseRevoke":
                observer.on_lease_revoked()

    # ---- linearizable reads ------------------------------------------------
    def _read_state(self, index: int, ctx: bytes) -> None:
        batch = self._reads_in_flight.pop(ctx, None)
        if batch is None:
            return
        bisect.insort(
            self._read_wait_index, (index, next(self._read_seq), batch), key=lambda t: (t[0], t[1])
        )

    def _release_reads(self) -> None:
        while self._read_wait_index and self._read_wait_index[0][0] <= self.applied_index:
            _, _, batch = self._read_wait_index.pop(0)
            if time.monotonic() - batch.started > SLOW_READ_INDEX_SECONDS:
                self.counters.slow_read_indexes += 1
            for fut in batch.futures:
                if not fut.done():
                    fut.set_result(None)

    def _fail_reads(self, message: str) -> None:
        for batch in self._reads_in_flight.values():
            for fut in batch.futures:
                if not fut.done():
                    self.counters.read_indexes_failed += 1
                    fut.set_exception(E.etcd_error(message))
        self._reads_in_flight.clear()

    # ---- snapshots ---------------------------------------------------------
    async def _maybe_snapshot(self) -> None:
        if self.applied_index - self.snapshot_index < self.cfg.snapshot_count:
            return
        index = self.applied_index
        term = self.storage.term(index)
        conf = self.node.status().conf_state
        meta = SnapshotMetadata(index=index, term=term, conf_state=conf)
        image = os.path.join(self.snapshotter.dir, f".{index:016x}.db.tmp")
        # The image and the checkpoint see committed batches only; nothing is applied
        # while the loop awaits the worker, so the image is exactly at `index`.
        self.kv.commit()
        await asyncio.to_thread(self._write_snapshot, meta, image)
        self.storage.create_snapshot(index, conf, b"")
        compact_to = index - self.cfg.snapshot_catchup_entries
        if compact_to > self.storage.first_index():
            self.storage.compact(compact_to)
        self.snapshot_index = index
        self.counters.snapshots_taken += 1
        log.info("saved snapshot", extra={"fields": {"snapshot-index": index, "term": term}})

    def _write_snapshot(self, meta: SnapshotMetadata, image: str) -> None:
        """Worker thread: db image, snapshot file, WAL marker, durable db, release WAL."""
        self.kv.backup(image)
        self.snapshotter.save(meta, image)
        self.wal.save_snapshot(meta)
        self.kv.checkpoint_durable()
        self.wal.release_to(meta.index)
        self.snapshotter.purge(keep=2)

    async def _persist_snapshot(self, snap: Snapshot) -> None:
        """A snapshot from the leader: store it durably before anything depends on it."""
        path = self._received_snapshots.get(snap.metadata.index)
        if path is None:
            raise RuntimeError(
                f"snapshot at index {snap.metadata.index} arrived without its db image"
            )

        def persist() -> None:
            self.snapshotter.save(snap.metadata, path)
            self.wal.save_snapshot(snap.metadata)

        await asyncio.to_thread(persist)
        self.storage.apply_snapshot(snap)

    async def _install_snapshot(self, snap: Snapshot) -> None:
        newest = self.snapshotter.load_newest()
        if newest is None or newest[0].index != snap.metadata.index:
            raise RuntimeError(f"snapshot {snap.metadata.index} was not saved before install")
        self.installing_snapshot = True
        try:
            await asyncio.to_thread(self.kv.restore_from, newest[1])
        finally:
            self.installing_snapshot = False
        self._received_snapshots.pop(snap.metadata.index, None)
        self.applied_index = max(snap.metadata.index, self.kv.applied_index())
        self.snapshot_index = snap.metadata.index
        self.counters.snapshots_installed += 1
        self.db_size = self.kv.db_total_size()
        self.lessor.reload()
        log.info(
            "applied snapshot from leader",
            extra={"fields": {"snapshot-index": snap.metadata.index}},
        )

    # ---- housekeeping the leader proposes ------------------------------------
    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.role != StateType.StateLeader:
                continue
            now = time.monotonic()
            for lease_id in self.lessor.expired(now):
                self.propose_nowait(rq.LeaseRevokeRequest(id=lease_id))
                if self.observer is not None:
                    self.observer.on_lease_expired()
            target = self.compactor.next_compaction(now, self.kv.current_revision())
            if target:
                self.propose_nowait(rq.CompactionRequest(revision=target))

    # ---- services for the KV layer ---------------------------------------
    def kv_lock(self) -> contextlib.AbstractContextManager[object]:
        """Held while reading the store off the apply path (apply runs on the loop today)."""
        return contextlib.nullcontext()

    def raise_nospace_alarm(self) -> None:
        """Over quota: replicate a NOSPACE alarm once (etcd raises it from the proposer)."""
        if not any(name == "NOSPACE" for _, name in self.kv.alarms()):
            self.propose_nowait(
                rq.AlarmRequest(
                    action=rq.AlarmAction.ACTIVATE,
                    member_id=self.member_id,
                    alarm=rq.AlarmType.NOSPACE,
                )
            )

    async def defragment(self) -> None:
        """Defragment the backend; etcd_disk_defrag_inflight is 1 until it ends, even badly."""
        self._defrags_running += 1
        try:
            await asyncio.to_thread(self.kv.defragment)  # the store reports its duration
        finally:
            self._defrags_running -= 1
        self.db_size = self.kv.db_total_size()

    @property
    def defrag_inflight(self) -> bool:
        """A defragmentation is running or waiting for the store (etcd_disk_defrag_inflight)."""
        return self._defrags_running > 0

    async def client_urls_of(self, member_id: int) -> list[str]:
        """Client URLs a member advertises (asked over its peer URL, then cached)."""
        if member_id == self.member_id:
            return list(self.cfg.advertise_client_urls)
        cached = self._client_urls.get(member_id)
        if cached is not None:
            return cached
        spec = next((m for m in self.cfg.members if m.member_id == member_id), None)
        if spec is None:
            return []
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(ssl=self.peer_ssl or True)
            ) as session,
            session.get(spec.peer_urls[0] + MEMBER_INFO_PATH) as resp,
        ):
            info = await resp.json()
        urls = [str(u) for u in info.get("clientURLs", [])]
        self._client_urls[member_id] = urls
        return urls

    async def leader_client_url(self) -> str | None:
        if self.lead == 0:
            return None
        urls = await self.client_urls_of(self.lead)
        return urls[0] if urls else None

    # ---- fault injection --------------------------------------------------
    def set_fsync_delay(self, seconds: float) -> None:
        self.wal.fsync_delay_seconds = max(0.0, seconds)

    @property
    def proposals_pending(self) -> int:
        """Client proposals waiting to be applied (etcd_server_proposals_pending)."""
        return len(self._waiters)

    @property
    def is_leader(self) -> bool:
        return self.role == StateType.StateLeader

    def hard_state(self) -> HardState:
        return self.storage.initial_state()[0]

    def conf_state(self) -> ConfState:
        return self.node.status().conf_state
