"""Background jobs: the leader's own proposals (lease revokes, auto-compaction), and
every member's physical compaction.

etcd's lessor expiry loop and its compactor run only on the leader; each turns into
an ordinary proposal, so every member applies the same revoke or compaction. The
apply of a compaction only records it; each member then deletes the condemned rows
in bounded batches here, yielding to the loop between them (etcd's compaction
goroutine), so heartbeats, fsyncs and answers interleave with a large compaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from node.mvcc import compaction
from node.mvcc import requests as rq
from node.raft import StateType

if TYPE_CHECKING:
    from node.mvcc.compactor import CompactionPolicy
    from node.server.context import ServerContext
    from node.server.proposals import Proposals

HOUSEKEEPING_INTERVAL_SECONDS = 0.5
COMPACTION_POLL_SECONDS = 0.1  # how soon an applied compaction's deletion starts


async def housekeeping_loop(
    ctx: ServerContext, compactor: CompactionPolicy, proposals: Proposals
) -> None:
    """Every 500 ms on the leader: propose a revoke per expired lease, then a compaction."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)
        if ctx.leadership.role != StateType.StateLeader:
            continue
        now = time.monotonic()
        for lease_id in ctx.lessor.expired(now):
            proposals.propose_nowait(rq.LeaseRevokeRequest(id=lease_id))
            ctx.observer.on_lease_expired()
        target = compactor.next_compaction(now, ctx.opened.kv.current_revision())
        if target:
            proposals.propose_nowait(rq.CompactionRequest(revision=target))


async def compaction_loop(
    ctx: ServerContext,
    *,
    limit: int = compaction.BATCH_LIMIT,
    pause: float = compaction.PAUSE_SECONDS,
    poll: float = COMPACTION_POLL_SECONDS,
) -> None:
    """Delete what applied compactions condemned, one committed batch at a time.

    Each `compact_step` runs in a worker thread (SQLite releases the GIL while it
    deletes) and holds the store's lock for at most `limit` stored revisions (after
    reading the links of at most 10 x `limit` rows written since the compact revision),
    so the loop keeps ticking, sending and fsyncing throughout, and waits for the store,
    if it applies meanwhile, for one batch at most; the pause between batches lets the
    applies in. Pending work at start (a member stopped half-way) is picked up at once.
    """
    while True:
        kv = ctx.opened.kv
        while kv.compaction_pending() and not kv.defragmenting:
            await asyncio.to_thread(kv.compact_step, limit)
            await asyncio.sleep(pause)
        await asyncio.sleep(poll)
