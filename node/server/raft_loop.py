"""The Ready loop: the only code that touches the Raft core (etcd's raft.go).

One asyncio task owns the `RawNode`. Everything else (client handlers, the peer
transport, the tick timer) puts work into the `Inbox` (inbox.py) and wakes the loop; the loop
feeds the inbox to the core, then handles each `Ready` in etcd raftexample's order:

    send requests  ->  persist (WAL write + ONE fdatasync)  ->  send
    messages_after_persist (before the in-memory log takes the entries)  ->  apply
    committed entries (into the backend's open SQLite batch)  ->  advance

The fdatasync runs on the loop thread while the disk is fast (a hop to a worker
thread and back costs more than a fast fsync) and in a worker thread when the
disk is slow or the lab slows it, so the loop keeps serving; a leader's ticks then reach
the core meanwhile and its heartbeats leave on time (_tick_while_persisting). A Ready with nothing
to persist applies first and sends after, so clients' answers leave before the
commit index goes to followers; in it, clients' plain puts are answered even before
their apply (Applier.answer_ahead: a committed plain put's answer is known).
Group commit falls out of this shape: while one
fsync runs, new proposals pile up in the inbox or the sockets and all of them go
out in the next Ready's single fsync.
Nothing is acknowledged to a client before the entry is committed (a majority
fsynced it) and applied here.

A commit-only append (the empty MsgApp the core sends each follower when the commit
index moves) waits up to COMMIT_HOLD_SECONDS from when it was held for the next append to
that follower, which carries the commit index too and replaces it. At one client every
write otherwise woke each follower twice (its entry, then its commit: a second WAL write,
apply and answer) and the leader twice more for those answers, on two shared cores. With no write to
follow, a follower learns the commit index that much later; its linearizable reads do
not wait for it (the ReadIndex heartbeats carry the commit index). The hold is counted
per message: one timer armed by an earlier, since replaced, hold used to send a third of
one client's commit-only appends early (at a random phase of the next write), each a
second wake-up, WAL write, ack and apply per follower after all.

A snapshot (a full SQLite checkpoint with two fsyncs in a worker thread, 90-170 ms
measured under load) does not hold the loop: it runs as a task of its own
(snapshots.py) while Readys go on being sent, persisted and advanced; only its FULL
checkpoint holds the applies (the Applier defers them, as during a defragment), so
the database is durable at exactly the snapshot's index. (Awaited inline it delayed
every heartbeat of its duration: 2 of 3 heartbeat send failures of a loaded leader in
issue 17's diagnosis; holding every Ready until it ended still cost a heartbeat when
it outlasted one interval, as it did under load.) While one runs, the WAL's saves go
through the fsync thread: the snapshot's thread writes the WAL's marker and releases
segments under the WAL's lock, which the loop thread must never wait for. A Ready that
installs a snapshot from the leader waits for ours to end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from node.raft import ProposalDropped, StateType
from node.raft.messages import MessageType

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.raft import Ready
    from node.raft.messages import Message
    from node.server.apply import Applier
    from node.server.context import ServerContext
    from node.server.proposals import Proposals
    from node.server.read_index import ReadIndex
    from node.server.snapshots import Snapshots

log = logging.getLogger(__name__)

# How long a commit-only append may wait for the next append to its follower (see above):
# longer than a write's round trip at one client (~1.2 ms), far below a heartbeat.
COMMIT_HOLD_SECONDS = 0.002
# A held append this close to its end leaves when the timer fires (asyncio fires timers
# up to its clock resolution early), instead of re-arming for a few microseconds.
COMMIT_HOLD_SLACK_SECONDS = 0.0001
FSYNC_ON_LOOP_SECONDS = 0.002  # fsyncs faster than this block the loop less than a hop costs


_MSG_PROP = MessageType.MsgProp


def give_way() -> None:
    """Let a process this member just woke run before our own work that nobody waits for.

    Linux places a task woken through a socket (a sync wake-up) on the waker's CPU and
    expects the waker to sleep soon. A follower that wrote its ack then applied (50-100
    µs) while the leader it had just woken waited on the same CPU, the other CPU
    often idle: `perf sched` on a one-client put load showed the leader running a
    median 111 µs after the ack woke it, and the client likewise behind the leader's
    apply. A yield hands the CPU to the woken process; the apply runs when it sleeps,
    or on the other CPU. Measured (session 27): one-client put p50 -46 µs in 6
    interleaved pairs of clusters (every pair won), and 0.959x / 0.981x of etcd's in two
    latency benches against 0.979x / 0.992x without it; 64 clients and the members' CPU
    per put unchanged. With nothing else runnable here the call returns at once.
    """
    os.sched_yield()


def step_forwarded_proposals_last(
    step: Callable[[Message], None], messages: list[Message]
) -> list[Message]:
    """Step every message but the proposals peers forwarded to us; return those, in order.

    A leader resumed after a pause (SIGSTOP) reads in one turn what its peers sent
    meanwhile: proposals they forwarded, then the new leader's messages of a higher term.
    Stepped in arrival order, it would append the proposals as the deposed leader, and
    they would be lost with its log's tail (each a client's request timeout). Stepped
    after the higher term is known, they go on to the new leader. Raft does not order a
    forwarded proposal against other messages (the network may reorder them), and each
    is still stepped once.
    """
    forwarded: list[Message] = []
    for msg in messages:
        if msg.type == _MSG_PROP:
            forwarded.append(msg)
        else:
            step(msg)
    return forwarded


class RaftLoop:
    """Feeds the core and carries out each Ready: send, persist, send acks, apply, advance."""

    def __init__(
        self,
        ctx: ServerContext,
        proposals: Proposals,
        reads: ReadIndex,
        applier: Applier,
        snapshots: Snapshots,
    ) -> None:
        self._ctx = ctx
        self._member_id = ctx.cfg.member_id
        self._tick_seconds = ctx.cfg.tick_seconds
        self._proposals = proposals
        self._reads = reads
        self._applier = applier
        self._snapshots = snapshots
        self._leadership = ctx.leadership
        # (leader, term) of the last leadership counted in etcd_server_leader_changes_seen
        self._counted_leadership = (0, 0)
        # etcd's heartbeat timeout detector: when the last heartbeat to each peer left
        self._heartbeat_sent: dict[int, float] = {}
        # A snapshot in flight (see the module docstring); a Ready that installs one
        # waits for it.
        self._snapshot_task: asyncio.Task[None] | None = None
        # The WAL's fsyncs run one at a time in their own thread (no context copy per call,
        # as asyncio.to_thread makes, and never queued behind a snapshot or a defrag).
        self._fsync_thread = concurrent.futures.ThreadPoolExecutor(1, "wal-fsync")
        # Commit-only appends waiting for the next append to their follower (module
        # docstring): by follower, (the append, when it was held); one timer, armed for
        # the oldest hold's end or earlier, sends those whose hold ended.
        self._held_commits: dict[int, tuple[Message, float]] = {}
        self._held_timer: asyncio.TimerHandle | None = None
        # Ticks fed to the core while a save ran in the fsync thread (_tick_while_persisting)
        self._ticked_while_persisting = False
        self._ticks_this_save = 0
        self._persist_tick_limit = max(1, ctx.cfg.election_ticks // 2)

    def close(self) -> None:
        """After the loop's task ended: a save in flight finishes before the WAL closes."""
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        self._fsync_thread.shutdown(wait=True)

    # ---- timers ----------------------------------------------------------------------
    async def tick_loop(self) -> None:
        interval = self._tick_seconds
        next_at = time.monotonic() + interval
        inbox, faults, observer = self._ctx.inbox, self._ctx.faults, self._ctx.observer
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # fell behind (paused process, overloaded loop): don't burst
                next_at = now + interval
            if not faults.ticks_paused:
                inbox.ticks += 1
                if self._may_tick_while_persisting():
                    self._tick_while_persisting()
                inbox.wake.set()
            observer.on_loop_lag(max(0.0, now - (next_at - interval)))

    # ---- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        wake, node = self._ctx.inbox.wake, self._ctx.opened.node
        try:
            while True:
                await wake.wait()
                wake.clear()
                self._feed_core()
                while node.has_ready():
                    await self.handle_ready(node.ready())
                    self._feed_core()
        finally:
            # Stopping: a snapshot's worker thread still writes the WAL; let it finish
            # before the caller closes the WAL.
            task = self._snapshot_task
            if task is not None and not task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.shield(task)

    def _start_snapshot(self) -> None:
        """Start a snapshot task when one is due (the cheap part of maybe_snapshot's test)."""
        task = self._snapshot_task
        if task is not None:
            if not task.done():
                return
            self._snapshot_task = None
            task.result()  # a failed snapshot stops the loop, as before
        applied = self._applier.applied_index
        if applied - self._snapshots.snapshot_index < self._ctx.cfg.snapshot_count:
            return
        self._snapshot_task = asyncio.get_running_loop().create_task(
            self._snapshots.maybe_snapshot(), name="raft-snapshot"
        )

    async def _snapshot_done(self) -> None:
        """Wait for the snapshot in flight, if any; its failure stops the loop, as before."""
        task = self._snapshot_task
        if task is None:
            return
        try:
            await asyncio.shield(task)  # our cancellation must not cancel the snapshot
        finally:
            if task.done():
                self._snapshot_task = None

    def _may_tick_while_persisting(self) -> bool:
        """A leader whose save runs in the fsync thread, for less than half an election timeout.

        Past that bound the disk is not slow but stuck: the heartbeats stop, as etcd's do
        when its raft loop waits for an fsync, so the followers elect a leader that can
        write (a leader heartbeating over a hung disk would hold every write forever).
        The core's own state decides, not the last Ready's: a message stepped during the
        save may have made it step down, and a follower's ticks wait for the Ready (what
        they may start, a campaign, needs its term and vote durable first).
        """
        return (
            self._ctx.inbox.persisting
            and self._ticks_this_save < self._persist_tick_limit
            and self._ctx.opened.node.leads
        )

    def _tick_while_persisting(self) -> None:
        """A leader's save is in the fsync thread: tick the core now and send what it sent.

        The Ready loop feeds ticks to the core only between Readys, so a slow fsync held
        every heartbeat until it ended (issue 17: a 0.1-0.2 s fdatasync on a shared disk
        was a heartbeat send failure, a follower's election timer running down meanwhile).
        The core may be ticked, and its requests sent, while a Ready is persisted
        (`RawNode.take_messages`): peer messages are already stepped meanwhile
        (`Inbox.on_peer_message`), so the followers' answers keep the quorum check fed.
        Only a leader does this; a follower's election ticks wait for the Ready.
        """
        inbox, node = self._ctx.inbox, self._ctx.opened.node
        ticks, inbox.ticks = inbox.ticks, 0
        for _ in range(ticks):
            node.tick()
        self._ticks_this_save += ticks
        self._ticked_while_persisting = True
        self._send(node.take_messages())

    def _feed_core(self) -> None:
        """Hand everything queued since the last iteration to the core, in arrival order."""
        ctx = self._ctx
        node, inbox = ctx.opened.node, ctx.inbox
        ticked = inbox.ticks > 0 or self._ticked_while_persisting
        if ticked:
            ticks, inbox.ticks = inbox.ticks, 0
            self._ticked_while_persisting = False
            for _ in range(ticks):
                node.tick()
            ctx.opened.kv.commit_if_due()  # an idle member's last applied entries get committed
            self._applier.refresh_db_size()
        if inbox.reports:
            reports, inbox.reports = inbox.reports, []
            for report in reports:
                with contextlib.suppress(ProposalDropped):
                    report()
        if inbox.messages:
            messages, inbox.messages = inbox.messages, []
            forwarded = step_forwarded_proposals_last(inbox.step, messages)
            for msg in forwarded:
                inbox.step(msg)
        self._proposals.drain_into(node, self._applier.applied_index)
        self._reads.drain_into(node, ticked)

    async def handle_ready(self, rd: Ready) -> None:
        """Carry out one Ready in the durability order (module docstring), then advance."""
        opened = self._ctx.opened
        wal = opened.wal
        if rd.soft_state is not None:
            term = rd.hard_state.term if rd.hard_state is not None else self._leadership.term
            self.on_soft_state(rd.soft_state.lead, rd.soft_state.role, term)
        if rd.hard_state is not None:
            self._leadership.term = rd.hard_state.term
        snapshot = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        snapshotting = self._snapshot_task is not None
        if (
            rd.entries
            or snapshot is not None
            or rd.must_sync
            or not rd.committed_entries
            or self._applier.held  # the messages leave now, the apply waits
        ):
            # 1. requests may leave while we persist (leader appends in parallel with followers)
            self._send(rd.messages)
            later = None
        else:
            # Nothing to persist, entries to apply (on a leader: a commit, and the
            # commit index going out to followers): apply first, so the clients' answers
            # are written before the followers' messages and before their wake-ups
            # compete for the CPU. Sending later is always safe.
            later = rd.messages
        if snapshot is not None and snapshotting:
            await self._snapshot_done()  # ours ends before the leader's replaces the store
        # 2. persist: one write, one fdatasync (on the loop while the disk is fast)
        if snapshot is not None:
            await self._snapshots.persist(snapshot)
        if snapshotting and (rd.must_sync or rd.entries):
            await self._save_in_thread(rd, rd.must_sync)  # the WAL's lock may be taken
        elif rd.must_sync and self._fsync_on_loop():
            # The appends are already on the wire (send writes to the sockets at once),
            # so followers persist while we do.
            wal.save(rd.hard_state, rd.entries, True)
        elif rd.must_sync:
            await self._save_in_thread(rd, True)
        elif rd.entries:
            wal.save(rd.hard_state, rd.entries, False)
        # 3. responses that promise durability leave only now (Raft thesis §3.8), and
        # first: the fsync is all they wait for. The in-memory log's copy below changes
        # nothing they promise, and nothing runs between them and it (no await).
        acks = [m for m in rd.messages_after_persist if m.to != self._member_id]
        if acks:
            self._send(acks)  # written at once: the leader is not waiting for our apply
            if rd.committed_entries:
                give_way()  # the leader woken by the ack runs before our apply
        if rd.entries:
            opened.storage.append(rd.entries)
        if rd.hard_state is not None:
            opened.storage.set_hard_state(rd.hard_state)
        # 4. apply
        if snapshot is not None:
            await self._snapshots.install(snapshot)
        if rd.committed_entries:
            if later is not None and self._applier.answer_ahead(rd.committed_entries):
                # Plain puts answered from their committed entries: one turn of the loop
                # writes the answers, then they are applied (Applier.answer_ahead).
                await asyncio.sleep(0)
                give_way()  # the clients woken by the answers run before the apply
                self._applier.apply(rd.committed_entries)
            else:
                self._applier.apply(rd.committed_entries)
                if later is not None:
                    # One turn of the loop: the answered handlers write their responses
                    # now, before the commit-index save and the sends below.
                    await asyncio.sleep(0)
            self._applier.observe()  # the apply metrics, after the answers
        if not rd.must_sync and not rd.entries and rd.hard_state is not None:
            # Only the commit index moved: a small write with no fsync (etcd's MustSync
            # rule), after the apply, so the answers do not wait for it.
            if self._snapshot_task is not None:
                await self._save_in_thread(rd, False)
            else:
                wal.save(rd.hard_state, rd.entries, False)
        for rs in rd.read_states:
            self._reads.on_read_state(rs.index, rs.request_ctx)
        # 5. advance: the core may now count our own append and step local responses
        opened.node.advance(rd)
        self._reads.release(self._applier.applied_index)
        if later:
            self._send(later)
        self._start_snapshot()

    async def _save_in_thread(self, rd: Ready, must_sync: bool) -> None:
        """The Ready's WAL save in the fsync thread, while the loop keeps serving."""
        self._ctx.inbox.persisting = True
        self._ticks_this_save = 0
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._fsync_thread, self._ctx.opened.wal.save, rd.hard_state, rd.entries, must_sync
            )
        finally:
            self._ctx.inbox.persisting = False

    def _fsync_on_loop(self) -> bool:
        """Fsync on the loop thread while the disk is fast and no lab delay is set.

        Handing a save to the worker thread and back costs about 0.2 ms of wake-ups
        (measured on 2 vCPUs, more than the fdatasync itself), on every follower's
        path from append to ack. A slow disk (last fsync over FSYNC_ON_LOOP_SECONDS) or
        an injected delay moves the saves to the thread, so the loop keeps serving.
        """
        wal = self._ctx.opened.wal
        return wal.fsync_delay_seconds <= 0.0 and wal.last_fsync_seconds < FSYNC_ON_LOOP_SECONDS

    def on_soft_state(self, lead: int, role: StateType, term: int | None = None) -> None:
        """The leader or this member's role changed (a Ready's soft state).

        `term` is the term the soft state belongs to (None: unknown, every newly known
        leader counts, as etcd counts). A follower that pre-campaigned (PreVote clears its
        leader without changing the term, e.g. after a SIGSTOP outlasted its election
        timeout) and then hears from the same leader in the same term saw no election:
        that is not counted as a leader change, nor as a newly elected leader.
        """
        seen, ctx = self._leadership, self._ctx
        if lead != seen.lead:
            if lead != 0:
                if term is None or (lead, term) != self._counted_leadership:
                    ctx.counters.leader_changes_seen += 1
                    self._proposals.leader_elected_at = time.monotonic()  # leadElectedTime
                if term is not None:
                    self._counted_leadership = (lead, term)
                self._proposals.leader_known()
                self._reads.leader_known()
            log.info(
                "leader changed",
                extra={
                    "fields": {
                        "old-leader": f"{seen.lead:x}",
                        "new-leader": f"{lead:x}",
                        "term": seen.term,
                    }
                },
            )
            if lead == 0:
                self._reads.leader_lost()
        if role == StateType.StateLeader and seen.role != StateType.StateLeader:
            ctx.lessor.promote(time.monotonic())
            self._heartbeat_sent.clear()  # etcd resets its detector on a leader change
        elif role != StateType.StateLeader and seen.role == StateType.StateLeader:
            ctx.lessor.demote()
        seen.lead, seen.role = lead, role

    def _observe_heartbeat(self, to: int) -> None:
        """etcd's timeout detector: a heartbeat to `to` later than 2 heartbeat intervals
        after the previous one is a heartbeat send failure ("leader failed to send out
        heartbeat on time"), counted per peer as etcd counts it, when the heartbeat leaves
        (so a stall anywhere on the leader's path counts, and only then)."""
        now = time.monotonic()
        last = self._heartbeat_sent.get(to)
        self._heartbeat_sent[to] = now
        if last is not None and now - last > 2 * self._tick_seconds:
            self._ctx.counters.heartbeat_send_failures += 1
            log.warning(  # etcd's words and fields: where the loop's stalls show first
                "leader failed to send out heartbeat on time; took too long, leader is "
                "overloaded likely from slow disk",
                extra={
                    "fields": {
                        "to": f"{to:x}",
                        "heartbeat-interval": f"{self._tick_seconds:.3f}s",
                        "expected-duration": f"{2 * self._tick_seconds:.3f}s",
                        "exceeded-duration": f"{now - last - 2 * self._tick_seconds:.3f}s",
                    }
                },
            )

    def _send(self, messages: list[Message]) -> None:
        if not messages:
            return
        plain = []
        held = self._held_commits
        for msg in messages:
            if msg.type == MessageType.MsgSnap:
                self._snapshots.send(msg)
                continue
            if msg.type == MessageType.MsgApp:
                replaced = held.pop(msg.to, None) if held else None  # it carries the commit
                if not msg.entries and COMMIT_HOLD_SECONDS > 0:
                    self._hold(msg, replaced)
                    continue
            elif msg.type == MessageType.MsgHeartbeat:
                self._observe_heartbeat(msg.to)
            plain.append(msg)
        if not held and self._held_timer is not None:
            # Every hold was replaced: no timer wake-up (a loop turn) for nothing.
            self._held_timer.cancel()
            self._held_timer = None
        if plain:
            self._ctx.transport.send(plain)

    def _hold(self, msg: Message, replaced: tuple[Message, float] | None) -> None:
        """Hold a commit-only append for COMMIT_HOLD_SECONDS from now (module docstring).

        One that replaces a commit-only append still held keeps that one's start, so a
        follower never waits longer than one hold for a commit index.
        """
        now = time.monotonic()
        since = replaced[1] if replaced is not None else now  # only commit-only are held
        self._held_commits[msg.to] = (msg, since)
        if self._held_timer is None:
            self._arm_hold(since + COMMIT_HOLD_SECONDS - now)

    def _arm_hold(self, delay: float) -> None:
        self._held_timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._send_held)

    def _send_held(self) -> None:
        """The timer fired: the commit-only appends whose hold ended leave now.

        Those held later (after the appends the timer was armed for were replaced) wait
        for the end of their own hold: the timer is armed again for the oldest.
        """
        self._held_timer = None
        held = self._held_commits
        if not held:
            return
        ends = time.monotonic() - COMMIT_HOLD_SECONDS + COMMIT_HOLD_SLACK_SECONDS
        due = [to for to, (_, since) in held.items() if since <= ends]
        if due:
            self._ctx.transport.send([held.pop(to)[0] for to in due])
        if held:
            oldest = min(since for _, since in held.values())
            self._arm_hold(oldest + COMMIT_HOLD_SECONDS - time.monotonic())
