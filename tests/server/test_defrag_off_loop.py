"""A defragment never makes the member's loop wait for the store.

In-process and never started (as test_server_reports.py). A store that gives free pages
back in steps applies, and answers, a put sent during a step once that step ends, not
once the defragment ends: the test holds the first step and the start of the second. A
file made before steps existed gets one whole VACUUM, held open by the test while the
loop applies, commits, reads sizes and serves a serializable read. Had any of those
taken the store's lock, the loop would have stalled until the safety valve released the
VACUUM, and the test checks that the valve never fired."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


def _put(index: int, key: bytes, value: bytes = b"v") -> Entry:
    return Entry(term=1, index=index, data=encode_request(index, rq.PutRequest(key, value)))


def _entry(index: int, request: Any) -> Entry:
    return Entry(term=1, index=index, data=encode_request(index, request))


def _free_pages(server: EtcdServer) -> int:
    """Write 100 large values, delete them and compact: their pages become free pages."""
    kv = server.kv
    entries = [_put(i + 1, b"big/%03d" % i, b"x" * 4000) for i in range(100)]
    entries.append(_entry(101, rq.DeleteRangeRequest(b"big/", b"big0")))
    entries.append(_entry(102, rq.CompactionRequest(revision=kv.current_revision() + 101)))
    server.applier.apply(entries)
    for _ in range(1000):  # the compaction loop's batches, run here (bounded)
        if kv.compact_step():
            break
    kv.commit()
    return kv.stats().db_total_size - kv.stats().db_in_use_size


async def test_a_put_during_a_defragment_step_is_answered_after_that_step(
    server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kv = server.kv
    assert _free_pages(server) > 0
    size_before = kv.db_total_size()
    inside, release = threading.Event(), threading.Event()  # within the first step
    between, go_on = threading.Event(), threading.Event()  # before the second
    step = kv.defrag_step
    calls = 0

    def held_step(pages: int = 1) -> int | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            with kv._lock:  # as a real step: the store's lock throughout
                inside.set()
                assert release.wait(VALVE_SECONDS)
                return step(pages=1)  # one page a step: many steps
        if calls == 2:
            between.set()
            assert go_on.wait(VALVE_SECONDS)
        return step(pages=1)

    monkeypatch.setattr(kv, "defrag_step", held_step)
    task = asyncio.create_task(server.defragment())
    try:
        assert await asyncio.to_thread(inside.wait, 10)
        index = server.applied_index + 1
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        server.proposals.waiters[index] = answer  # the client that proposed the put
        server.applier.apply([_put(index, b"during")])  # the loop does not wait for the step
        assert server.applier.deferred == 1
        assert not answer.done()
        release.set()
        assert await asyncio.to_thread(between.wait, 10)
        # The step ended: the put was applied and answered, the defragment goes on.
        assert answer.done()
        assert answer.result().revision == kv.current_revision()
        assert server.applier.deferred == 0
        assert server.applied_index == index
        assert server.defrag_inflight
        go_on.set()
        await asyncio.wait_for(task, 30)
    finally:
        release.set()
        go_on.set()
        await asyncio.gather(task, return_exceptions=True)
    assert not server.defrag_inflight
    assert kv.db_total_size() < size_before
    assert kv.stats().db_total_size == kv.stats().db_in_use_size  # no free page left
    assert kv.get(b"during") is not None


async def test_the_loop_applies_later_and_keeps_serving_while_a_vacuum_holds_the_store(
    server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kv = server.kv
    monkeypatch.setattr(type(kv), "defrag_in_steps", property(lambda _: False))  # an old file
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
