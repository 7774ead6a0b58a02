"""`EtcdServer`: one member's server, tying its jobs together (etcd's server.go).

The jobs live one per module: `bootstrap` opens the data directory, `raft_loop` runs
the Ready loop, `proposals` and `apply` carry a write from the client to the store and
back, `read_index` serves linearizable reads, `snapshots` makes, sends and installs
snapshots, `housekeeping` proposes lease revokes and compactions. This class builds
them, starts and stops their tasks, and is the surface node/member and the KV service
use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any, TypeVar

from node.mvcc import requests as rq
from node.mvcc.compactor import make_compactor
from node.mvcc.hash import hash_file, hash_kv_file
from node.mvcc.lease import Lessor
from node.raft import StateType
from node.server.apply import Applier
from node.server.bootstrap import bootstrap
from node.server.context import Leadership, ServerContext
from node.server.corruption import CorruptionChecker
from node.server.counters import Faults, ServerCounters
from node.server.housekeeping import compaction_loop, housekeeping_loop
from node.server.inbox import Inbox
from node.server.membership import Membership
from node.server.observer import NullMemberObserver
from node.server.proposals import Proposals
from node.server.publish import publish_loop
from node.server.raft_loop import RaftLoop
from node.server.read_index import ReadIndex
from node.server.reconfig import Reconfig
from node.server.snapshots import Snapshots
from node.server.tick_advance import advance_election_ticks
from node.server.watch_bridge import progress_notify_loop
from node.tls import any_https, client_context
from node.transport import Transport, TransportOptions

# A defragment's steps (KVStore.defrag_step, 4 MiB each): enough for any quota, a bound.
DEFRAG_MAX_STEPS = 100_000
DEFRAG_RETRY_SECONDS = 0.01  # after a step skipped for a snapshot's checkpoint

_T = TypeVar("_T")

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from node.config import MemberConfig
    from node.raft import Status
    from node.server.observer import MemberObserver

log = logging.getLogger(__name__)


class EtcdServer:
    """Owns the Raft core, WAL, snapshots, transport and state machine of one member."""

    def __init__(self, cfg: MemberConfig, *, observer: MemberObserver | None = None) -> None:
        self.cfg = cfg
        self.member_id = cfg.member_id
        self.cluster_id = cfg.cluster_id
        self.observer: MemberObserver = observer or NullMemberObserver()
        self.counters = ServerCounters()
        self.faults = Faults()
        # Set once this member applied its own removal or a peer answered it 410 Gone:
        # the member process stops (etcd: "the member has been permanently removed").
        self.removed = asyncio.Event()
        self.published = asyncio.Event()  # the cluster lists this member as started

        boot = bootstrap(cfg, self.observer)
        self.membership = boot.membership
        self.kv = boot.kv
        self.kv.compact_in_background = True  # compaction_loop deletes in batches
        self.wal = boot.wal
        self._node = boot.node
        self.lessor = Lessor(self.kv)
        self._compactor = make_compactor(cfg.auto_compaction_mode, cfg.auto_compaction_retention)
        inbox = Inbox(boot.node)
        # Dials to peers (streams, probes, snapshots, member info) verify the peer's
        # certificate against --peer-trusted-ca-file and present --peer-cert-file. Calls
        # forwarded to the leader's client URL present --cert-file, as etcd's gateway.
        peer_ssl = (
            client_context(cfg.peer_tls)
            if any_https([*boot.peers.values(), *cfg.initial_advertise_peer_urls])
            else None
        )
        client_https = any_https(cfg.advertise_client_urls) or not cfg.client_tls.empty
        self.transport = Transport(
            self.member_id,
            self.cluster_id,
            boot.peers,
            on_message=inbox.on_peer_message,
            on_snapshot=inbox.on_peer_snapshot,
            on_unreachable=inbox.on_unreachable,
            on_active=inbox.on_peer_active,
            on_snapshot_status=inbox.on_snapshot_status,
            snapshot_dir=boot.snapshotter.dir,
            heartbeat_interval=cfg.tick_seconds,
            observer=self.observer,
            ssl_context=peer_ssl,
            election_timeout=cfg.election_timeout_ms / 1000.0,
            client_ssl_context=client_context(cfg.client_tls) if client_https else None,
            on_removed=self._removed_from_cluster,
            options=TransportOptions(rtt_monitor_interval=cfg.peer_rtt_monitor_interval_seconds),
        )
        self.ctx = ctx = ServerContext(
            cfg=cfg,
            opened=boot,
            lessor=self.lessor,
            inbox=inbox,
            transport=self.transport,
            counters=self.counters,
            faults=self.faults,
            observer=self.observer,
            leadership=Leadership(),
        )
        self.proposals = Proposals(ctx)
        self.reads = ReadIndex(ctx)
        self.applier = Applier(ctx, self.proposals)
        self.snapshots = Snapshots(ctx, self.applier)
        self.snapshots.on_installed = self._membership_from_store
        self.reconfig = Reconfig(
            ctx, self.membership, self._applied_own_removal, self.proposals.leader_wait
        )
        self.applier.on_conf_change = self.reconfig.apply
        self.applier.on_member_attributes = self._member_published
        self.loop = RaftLoop(ctx, self.proposals, self.reads, self.applier, self.snapshots)
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._defrags_running = 0  # defragment() calls not finished (they queue on the store)
        self._store_free = asyncio.Event()  # cleared while a defragment holds the store
        self._store_free.set()
        self._defrag_lock = asyncio.Lock()  # one VACUUM at a time
        self.corruption = CorruptionChecker(self)

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the jobs; with --experimental-initial-corrupt-check, a member that has
        data first compares its HashKV with its peers' (CorruptionError on a mismatch)."""
        if self.cfg.initial_corrupt_check and self.kv.applied_index() > 0:
            await self.corruption.initial_check()
        await self.transport.start()
        loop = asyncio.get_running_loop()
        jobs: tuple[Coroutine[Any, Any, None], ...] = (
            self.loop.run(),
            self.loop.tick_loop(),
            housekeeping_loop(self.ctx, self._compactor, self.proposals),
            compaction_loop(self.ctx),
            progress_notify_loop(
                lambda: self.ctx.opened.kv.watch_hub,
                self.cfg.watch_progress_notify_interval_seconds,
            ),
            publish_loop(self),
        )
        if self.cfg.corrupt_check_time_seconds > 0:
            jobs += (self.corruption.run(self.cfg.corrupt_check_time_seconds),)
        if self.cfg.initial_election_tick_advance and len(self.peer_ids) > 0:
            jobs += (self._advance_ticks(),)
        for coro in jobs:
            task = loop.create_task(coro)
            task.add_done_callback(self._task_died)
            self._tasks.append(task)
        voters = self._node.status().conf_state.voters
        if voters == (self.member_id,) and not self.cfg.existing_members:
            self.ctx.inbox.report(self._node.campaign)

    async def _advance_ticks(self) -> None:
        """etcd's adjustTicks for a member with peers (tick_advance.py)."""
        inbox = self.ctx.inbox
        voters = sorted(self._node.status().conf_state.voters)
        rank = voters.index(self.member_id) if self.member_id in voters else len(voters)
        await advance_election_ticks(
            inbox,
            self.cfg.election_ticks,
            self._active_peers,
            peer_up=inbox.peer_became_active,
            until_campaign=lambda: self._node.ticks_until_campaign,
            rank=rank,
        )

    def _active_peers(self) -> int:
        """Peers our stream to is established with (etcd's transport.ActivePeers)."""
        return sum(1 for stats in self.transport.stats().values() if stats.active)

    def _task_died(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.critical("server task died; stopping member", exc_info=exc)
            os._exit(70)  # a half-alive member is worse than a dead one

    async def stop(self) -> None:
        """Stop ticking and applying, then close transport, WAL and database (WAL last)."""
        self._stopping = True
        self.proposals.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.transport.stop()
        await self.snapshots.close()
        self.proposals.fail_all()
        self.reconfig.fail_all()
        self.loop.close()
        self.kv.close()
        self.wal.close()

    # ---- client requests -----------------------------------------------------------------
    async def propose(self, request: Any) -> Any:
        """Replicate one request through Raft; return the state machine's response.

        A compaction with `physical` is answered once this member has deleted what it
        condemned (etcd waits for its compaction goroutine the same way).
        """
        resp = await self.proposals.propose(request)
        if type(request) is rq.CompactionRequest and request.physical:
            for _ in range(60_000):  # 10 minutes at most; the client's deadline comes first
                if not self.kv.compaction_pending():
                    break
                await asyncio.sleep(0.01)
        return resp

    async def read_barrier(self) -> None:
        """Wait until a linearizable read may be served locally."""
        await self.reads.barrier()
        await self._store_free.wait()  # a read during a defragment waits off the loop

    def add_wake_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` once each time an apply batch or a read index woke waiting clients,
        after their wake-ups were queued and before they run: a front end may then write
        the answers of one wake-up together (node.api.grpc.http2.AnswerBatch)."""
        self.proposals.answered_listeners.append(listener)
        self.reads.released_listeners.append(listener)

    def transfer_leadership(self, to: int) -> None:
        self.ctx.inbox.report(lambda: self._node.transfer_leader(to))

    def raise_nospace_alarm(self) -> None:
        """Over quota: replicate a NOSPACE alarm once (etcd raises it from the proposer)."""
        if not any(name == "NOSPACE" for _, name in self.kv.alarms()):
            self.proposals.propose_nowait(
                rq.AlarmRequest(
                    action=rq.AlarmAction.ACTIVATE,
                    member_id=self.member_id,
                    alarm=rq.AlarmType.NOSPACE,
                )
            )

    async def defragment(self) -> None:
        """Defragment the backend; etcd_disk_defrag_inflight is 1 until it ends, even badly.

        Free pages go back in short steps, each a worker thread's write transaction, with
        applies, reads and compaction batches running between them: a put sent to this
        member waits for one step at most (etcd's defrag holds its backend, and so every
        apply of the member, for the whole rewrite). A file made before it could do that
        gets one whole VACUUM instead, which converts it.
        """
        self._defrags_running += 1
        try:
            async with self._defrag_lock:
                if self.kv.defrag_in_steps:
                    await self._defragment_in_steps()
                else:
                    self._store_free.clear()  # linearizable reads wait off the loop
                    try:
                        await self._holding_store(self.kv.defragment)
                    finally:
                        self._store_free.set()
                self.applier.db_size = self.kv.db_total_size()
        finally:
            self._defrags_running -= 1

    async def _defragment_in_steps(self) -> None:
        """`KVStore.defrag_step` until no free page is left (bounded in count)."""
        kv = self.kv
        started = time.perf_counter()
        for _ in range(DEFRAG_MAX_STEPS):
            left = await self._holding_store(kv.defrag_step)
            if left == 0:
                break
            # A skipped turn (a snapshot's checkpoint holds the writers) waits a little;
            # after a step the loop's own turn at the store comes before the next one.
            await asyncio.sleep(DEFRAG_RETRY_SECONDS if left is None else 0)
        await asyncio.to_thread(kv.finish_defrag, time.perf_counter() - started)

    async def _holding_store(self, work: Callable[[], _T]) -> _T:
        """Run `work` (a VACUUM, or one step) in a worker thread that holds the store.

        The loop never waits for the store meanwhile: it goes on ticking, heartbeating,
        fsyncing the WAL and acking; committed entries wait in the applier and are applied,
        in order, right after. The open batch is committed first, on the loop, so the
        committed state is the applied state while `work` runs (reads answer from it).
        """
        kv = self.kv
        kv.commit()
        kv.defragmenting = True
        try:
            return await asyncio.to_thread(work)
        finally:
            kv.defragmenting = False
            await self.applier.resume()

    async def hash_kv(self, revision: int) -> rq.HashKVResponse:
        """etcd's HashKV of this member's store, in a worker thread (node/mvcc/hash.py).

        The open batch is committed first, so the snapshot holds everything applied.
        """
        self.kv.commit()
        return await asyncio.to_thread(hash_kv_file, self.kv.path, revision, self.observer)

    async def hash(self) -> rq.HashResponse:
        """etcd's Hash (the whole store) of this member, in a worker thread."""
        self.kv.commit()
        return await asyncio.to_thread(hash_file, self.kv.path, self.observer)

    async def client_urls_of(self, member_id: int) -> list[str]:
        """Client URLs a member advertises (asked over its peer URL, then cached)."""
        if member_id == self.member_id:
            return list(self.cfg.advertise_client_urls)
        return await self.transport.client.client_urls_of(member_id)

    async def wait_leader(self, deadline: float) -> int:
        """The leader's member id once one is known; ErrNoLeader when `deadline` (the
        event loop's clock) passes first, as etcd's waitLeader."""
        return await self.proposals.leader_wait.leader(deadline)

    # ---- membership ------------------------------------------------------------------------
    @property
    def peer_ids(self) -> tuple[int, ...]:
        """The other members, as this member currently knows them."""
        known = set(self.membership.members) or {s.member_id for s in self.cfg.members}
        return tuple(m for m in sorted(known) if m != self.member_id)

    @property
    def is_learner(self) -> bool:
        """This member is a learner (a dict lookup: checked on every client request)."""
        return self.membership.is_learner(self.member_id)

    def _removed_from_cluster(self) -> None:
        if not self.removed.is_set():
            log.warning(
                "the member has been permanently removed from the cluster; the data-dir used "
                "by this member must be removed",
                extra={"fields": {"local-member-id": f"{self.member_id:x}"}},
            )
            self.removed.set()

    def _applied_own_removal(self) -> None:
        """This member applied its own removal. A leader first hands leadership over (the
        core sends MsgTimeoutNow to the most up-to-date voter): stop once another member
        leads, or after two election timeouts, so that message leaves before we do."""

        async def stop_after_handover() -> None:
            for _ in range(2 * self.cfg.election_ticks):
                if self.lead not in (0, self.member_id):
                    break
                await asyncio.sleep(self.cfg.tick_seconds)
            await asyncio.sleep(self.cfg.tick_seconds)  # the last messages leave
            self._removed_from_cluster()

        task = asyncio.get_running_loop().create_task(stop_after_handover())
        self._tasks.append(task)

    def _membership_from_store(self) -> None:
        """A snapshot replaced the store: its member table is the membership now."""
        fresh = Membership(self.kv.members(), self.kv.removed_member_ids())
        self.membership.members, self.membership.removed = fresh.members, fresh.removed
        for member in fresh.sorted():
            if member.id != self.member_id and member.peer_urls:
                self.transport.add_peer(member.id, member.peer_urls[0])
        for gone in fresh.removed:
            self.transport.remove_peer(gone)

    def _member_published(self, req: rq.MemberAttrRequest) -> None:
        urls = tuple(u for u in req.client_urls.decode().split(",") if u)
        self.membership.set_attributes(req.member_id, req.name.decode(), urls)
        if req.member_id != self.member_id:
            self.transport.client.forget_client_urls(req.member_id)

    # ---- state -----------------------------------------------------------------------------
    @property
    def lead(self) -> int:
        """The leader's member id as this member last saw it (0: none known)."""
        return self.ctx.leadership.lead

    @property
    def term(self) -> int:
        return self.ctx.leadership.term

    @property
    def is_leader(self) -> bool:
        return self.ctx.leadership.role == StateType.StateLeader

    @property
    def applied_index(self) -> int:
        return self.applier.applied_index

    @property
    def defrag_inflight(self) -> bool:
        """A defragmentation is running or waiting for the store (etcd_disk_defrag_inflight)."""
        return self._defrags_running > 0

    def status(self) -> Status:
        return self._node.status()

    # ---- fault injection -------------------------------------------------------------------
    def set_fsync_delay(self, seconds: float) -> None:
        self.wal.fsync_delay_seconds = max(0.0, seconds)
