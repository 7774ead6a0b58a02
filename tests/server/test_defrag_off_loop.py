"""A defragment holds the store in a worker thread; the member's loop never waits for it.

In-process and never started (as test_server_reports.py): the VACUUM is held open by
the test while the loop applies, commits, reads sizes and serves a serializable read.
Had any of those taken the store's lock, the loop would have stalled until the safety
valve released the VACUUM, and the test checks that the valve never fired.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.config import MemberConfig
from node.mvcc import requests as rq
from node.mvcc.codec import encode_request
from node.raft.messages import Entry
from node.server import EtcdServer

VALVE_SECONDS = 20.0  # releases a VACUUM the loop waited for, so a failure cannot hang


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    peer = ("http://127.0.0.1:9",)
    cfg = MemberConfig(
        name="m1",
        data_dir=str(tmp_path / "m1"),
        initial_cluster={"m1": peer},
        initial_advertise_peer_urls=peer,
    )
    d = EtcdServer(cfg)
    try:
        yield d
    finally:
        d.kv.close()
        d.wal.close()


def _put(index: int, key: bytes) -> Entry:
    return Entry(term=1, index=index, data=encode_request(index, rq.PutRequest(key, b"v")))


async def test_the_loop_applies_later_and_keeps_serving_while_a_vacuum_holds_the_store(
    server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kv = server.kv
    server.applier.apply([_put(1, b"before")])
    running, release = threading.Event(), threading.Event()
    vacuum = kv.defragment

    def held_defragment() -> float:
        with kv._lock:  # as the real VACUUM: the store's lock for the whole rebuild
            running.set()
            assert release.wait(VALVE_SECONDS + 10)
            return vacuum()

    monkeypatch.setattr(kv, "defragment", held_defragment)
    valve = threading.Timer(VALVE_SECONDS, release.set)
    valve.start()
    turns = 0

    async def heartbeat() -> None:
        nonlocal turns
        for _ in range(1_000_000):
            turns += 1
            await asyncio.sleep(0)

    beats = asyncio.create_task(heartbeat())
    task = asyncio.create_task(server.defragment())
    try:
        assert await asyncio.to_thread(running.wait, 10)
        # Everything the loop does with the store, while the VACUUM holds it:
        server.applier.apply([_put(2, b"during")])
        assert server.applier.deferred == 1
        assert server.applied_index == 1
        kv.commit_if_due()
        kv.commit()
        assert kv.db_total_size() > 0
        assert kv.stats().keys_total == 1
        server.applier.refresh_db_size()
        read = kv.range(rq.RangeRequest(b"before", serializable=True))
        assert [x.key for x in read.kvs] == [b"before"]
        turns_during = turns
        await asyncio.sleep(0.05)
        assert turns > turns_during  # the loop turned while the store was held
        assert not release.is_set()  # ... and nothing above waited for the valve
        release.set()
        await asyncio.wait_for(task, 30)
    finally:
        valve.cancel()
        release.set()
        beats.cancel()
        await asyncio.gather(task, beats, return_exceptions=True)
    # The held-back entry was applied once the store was free, in order.
    assert server.applier.deferred == 0
    assert server.applied_index == 2
    assert kv.get(b"during") is not None
