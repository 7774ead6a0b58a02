"""The member's physical compaction yields to the loop between bounded batches."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from node.server.housekeeping import compaction_loop
from tests.mvcc.conftest import Log

if TYPE_CHECKING:
    from node.server.context import ServerContext


def _large_store(path: Path, keys: int, rounds: int) -> KVStore:
    store = KVStore.open(str(path))
    store.compact_in_background = True
    raft = Log(store)
    for r in range(rounds):
        raft.batch(*(rq.PutRequest(f"k{i:05d}".encode(), b"v%d" % r) for i in range(keys)))
    raft.apply(rq.CompactionRequest(store.current_revision()))
    return store


async def test_compacting_a_large_store_lets_a_heartbeat_run_between_batches(
    tmp_path: Path,
) -> None:
    store = _large_store(tmp_path / "db", keys=2000, rounds=5)  # 10,000 rows, 8,000 condemned
    timeline: list[str] = []
    step = store.compact_step

    def recorded_step(limit: int = 1000) -> bool:
        timeline.append("batch")
        return step(limit)

    store.compact_step = recorded_step  # type: ignore[method-assign]

    async def heartbeat() -> None:
        for _ in range(100_000):  # bounded: a beat every millisecond the loop is free
            timeline.append("beat")
            await asyncio.sleep(0.001)

    ctx = cast("ServerContext", SimpleNamespace(opened=SimpleNamespace(kv=store)))
    compactor = asyncio.create_task(compaction_loop(ctx, limit=500, pause=0.002, poll=0.01))
    beats = asyncio.create_task(heartbeat())
    try:
        for _ in range(2000):  # bounded wait for the deletion to finish
            if not store.compaction_pending():
                break
            await asyncio.sleep(0.005)
        assert not store.compaction_pending()
    finally:
        for task in (compactor, beats):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        store.close()
    batches = [i for i, what in enumerate(timeline) if what == "batch"]
    assert len(batches) >= 10_000 // 500  # bounded batches, not one whole-store statement
    # Interleavings: between every two batches the heartbeat ran at least once (its
    # timer is always due before the compactor's pause ends, so this is an ordering).
    gaps = [b - a for a, b in itertools.pairwise(batches)]
    assert all(gap > 1 for gap in gaps), timeline[:50]
