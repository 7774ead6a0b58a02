"""What the leader proposes on its own: revokes of expired leases, and auto-compaction.

etcd's lessor expiry loop and its compactor run only on the leader; each turns into
an ordinary proposal, so every member applies the same revoke or compaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from node.mvcc import requests as rq

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.mvcc.compactor import CompactionPolicy
    from node.mvcc.lease import Lessor
    from node.mvcc.store import KVStore
    from node.server.observer import ServerObserver
    from node.server.proposals import Proposals

HOUSEKEEPING_INTERVAL_SECONDS = 0.5


async def housekeeping_loop(
    is_leader: Callable[[], bool],
    lessor: Lessor,
    compactor: CompactionPolicy,
    kv: KVStore,
    proposals: Proposals,
    observer: ServerObserver,
) -> None:
    """Every 500 ms on the leader: propose a revoke per expired lease, then a compaction."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)
        if not is_leader():
            continue
        now = time.monotonic()
        for lease_id in lessor.expired(now):
            proposals.propose_nowait(rq.LeaseRevokeRequest(id=lease_id))
            observer.on_lease_expired()
        target = compactor.next_compaction(now, kv.current_revision())
        if target:
            proposals.propose_nowait(rq.CompactionRequest(revision=target))
