"""Linearizable reads: etcd's linearizable read loop (v3_server.go), batched.

Concurrent callers of `barrier()` share one ReadIndex request (Raft §6.4): the Ready
loop sends the queued batch to the core (`drain_into`), the core answers with a read
state at some commit index (`on_read_state`), and the batch is released once the local
apply reached that index (`release`). A request unanswered after 500 ms is sent again,
as etcd's readIndexRetryTime.

While the member knows no leader, reads are held, as etcd holds them (its read loop
waits for a read state until the request timeout): they ask for a read index once a
leader is known, or fail "request timed out" when their request timeout ends first.
Losing the leader with a read index in flight holds that batch again, since its answer
may never come. So an election costs reads latency, not errors, as it does writes.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node import errors as E
from node.raft import ProposalDropped
from node.server.proposals import expire

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.raft import RawNode
    from node.server.context import ServerContext

SLOW_READ_INDEX_SECONDS = 0.5  # etcd's readIndexRetryTime


@dataclass(slots=True)
class _PendingRead:
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    started: float = 0.0
    attempted: float = 0.0  # last time a read index was requested for this batch


class ReadIndex:
    """Read barriers waiting for a read index, then for the apply to reach it."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._counters = ctx.counters
        self._queue: list[asyncio.Future[None]] = []
        self._held: list[asyncio.Future[None]] = []  # reads waiting for a leader
        self._in_flight: dict[bytes, _PendingRead] = {}
        # Invariant: sorted by (index, seq); entries wait for applied >= index.
        self._wait_index: list[tuple[int, int, _PendingRead]] = []
        self._seq = itertools.count()
        # Called once after `release` woke at least one read, before those reads run
        # (as Proposals.answered_listeners: a front end gathers their answers' writes).
        self.released_listeners: list[Callable[[], None]] = []

    async def barrier(self) -> None:
        """Wait until a linearizable read may be served locally (ReadIndex, Raft §6.4).

        Concurrent callers share one read index request, as etcd batches them.
        """
        ctx = self._ctx
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if ctx.leadership.lead == 0:
            self._held.append(fut)
        else:
            self._queue.append(fut)
            ctx.inbox.wake_loop()
        timer = loop.call_later(ctx.cfg.request_timeout_seconds, expire, fut)
        try:
            await fut
        except TimeoutError:
            self._counters.read_indexes_failed += 1
            raise E.etcd_error(E.REQUEST_TIMEOUT) from None
        finally:
            timer.cancel()

    def drain_into(self, node: RawNode, ticked: bool) -> None:
        """Send the queued barriers as one read index; after a tick, retry slow ones."""
        if self._queue:
            now = time.monotonic()
            batch = _PendingRead(self._queue, now, now)
            self._queue = []
            self._request(node, batch)
        if self._in_flight and ticked:
            self._retry_slow(node)

    def _request(self, node: RawNode, batch: _PendingRead) -> None:
        ctx = next(self._seq).to_bytes(8, "big")
        try:
            node.read_index(ctx)
            self._in_flight[ctx] = batch
        except ProposalDropped:  # no leader: wait for one (or the request timeout)
            self._hold(batch.futures)

    def _retry_slow(self, node: RawNode) -> None:
        """etcd re-sends a read index unanswered after 500 ms (the request or answer was lost)."""
        now = time.monotonic()
        for ctx, batch in list(self._in_flight.items()):
            if now - batch.attempted < SLOW_READ_INDEX_SECONDS:
                continue
            del self._in_flight[ctx]
            batch.futures = [f for f in batch.futures if not f.done()]
            if batch.futures:
                self._counters.slow_read_indexes += 1
                batch.attempted = now
                self._request(node, batch)

    def on_read_state(self, index: int, ctx: bytes) -> None:
        """The core answered read index `ctx` with commit index `index`."""
        batch = self._in_flight.pop(ctx, None)
        if batch is None:
            return
        bisect.insort(self._wait_index, (index, next(self._seq), batch), key=lambda t: (t[0], t[1]))

    def release(self, applied_index: int) -> None:
        """Let the reads whose index the apply has reached go."""
        waiting = self._wait_index
        woken = False
        while waiting and waiting[0][0] <= applied_index:
            _, _, batch = waiting.pop(0)
            if time.monotonic() - batch.started > SLOW_READ_INDEX_SECONDS:
                self._counters.slow_read_indexes += 1
            for fut in batch.futures:
                if not fut.done():
                    fut.set_result(None)
                    woken = True
        if woken:
            for listener in self.released_listeners:
                listener()

    def leader_lost(self) -> None:
        """No leader: reads waiting for a read index are held until a leader is known.

        Their requests went to a leader that is gone, so they may never be answered; they
        are asked again once a leader is known (a read index is always safe to repeat).
        """
        for batch in self._in_flight.values():
            self._hold(batch.futures)
        self._in_flight.clear()

    def leader_known(self) -> None:
        """A leader is known: the held reads whose clients still wait ask for a read index."""
        if not self._held:
            return
        held, self._held = self._held, []
        self._queue.extend(f for f in held if not f.done())
        self._ctx.inbox.wake_loop()

    def _hold(self, futures: list[asyncio.Future[None]]) -> None:
        self._held.extend(f for f in futures if not f.done())
        if self._ctx.leadership.lead != 0:
            self.leader_known()  # a leader became known in the meantime: ask again now
