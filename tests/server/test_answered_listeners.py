"""Proposals.resolve tells its listeners once per wake-up of clients, after the wake-ups.

A front end (the gRPC server's AnswerBatch) listens so that the answers an apply batch
wakes leave in one write per connection. The listener must run after the clients'
futures are resolved (so their handlers are queued on the loop before whatever the
listener queues), once per resolve that woke anyone, and never for one that woke no one.
In-process, never started: the test resolves results itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.mvcc import requests as rq
from node.mvcc.store import ApplyResult
from node.server import EtcdServer
from tests.server.configs import fast_m1


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    d = EtcdServer(fast_m1(tmp_path))
    try:
        yield d
    finally:
        d.loop.close()
        d.kv.close()
        d.wal.close()


async def test_listeners_hear_once_per_resolve_that_woke_clients(server: EtcdServer) -> None:
    proposals = server.proposals
    loop = asyncio.get_running_loop()
    futures = {rid: loop.create_future() for rid in (11, 12, 13)}
    proposals.waiters.update(futures)
    heard: list[list[bool]] = []  # at each call: which futures were done
    proposals.answered_listeners.append(lambda: heard.append([f.done() for f in futures.values()]))
    results = [ApplyResult(i, rid, rq.PutResponse(revision=i)) for i, rid in enumerate(futures)]
    proposals.resolve(results)
    assert heard == [[True, True, True]]  # once, after every future was resolved
    proposals.resolve(results)  # all answered already: nobody woken
    proposals.resolve([ApplyResult(9, 999, rq.PutResponse(revision=9))])  # no waiter
    assert len(heard) == 1
    assert [f.result().revision for f in futures.values()] == [0, 1, 2]
