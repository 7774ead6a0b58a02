"""What the leader proposes on its own: revokes of expired leases, and auto-compaction.

etcd's lessor expiry loop and its compactor run only on the leader; each turns into
an ordinary proposal, so every member applies the same revoke or compaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from node.mvcc import requests as rq
from node.raft import StateType

if TYPE_CHECKING:
    from node.mvcc.compactor import CompactionPolicy
    from node.server.context import ServerContext
    from node.server.proposals import Proposals

HOUSEKEEPING_INTERVAL_SECONDS = 0.5


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
