"""Proposals.resolve and ReadIndex.release tell their listeners once per wake-up of
clients, after the wake-ups (EtcdServer.add_wake_listener registers with both).

A front end (the gRPC server's AnswerBatch) listens so that the answers an apply batch
wakes leave in one write per connection. The listener must run after the clients'
futures are resolved (so their handlers are queued on the loop before whatever the
listener queues), once per resolve that woke anyone, and never for one that woke no one.
In-process, never started: the test resolves results itself.
"""

from __future__ import annotations

import asyncio

from node.mvcc import requests as rq
from node.mvcc.store import ApplyResult
from node.server import EtcdServer
from node.server.read_index import _PendingRead


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


async def test_listeners_hear_once_per_release_that_woke_reads(server: EtcdServer) -> None:
    reads = server.reads
    loop = asyncio.get_running_loop()
    futures = [loop.create_future(), loop.create_future()]
    heard: list[list[bool]] = []
    server.add_wake_listener(lambda: heard.append([f.done() for f in futures]))
    reads._in_flight[b"r1"] = _PendingRead(list(futures))  # a read index in flight
    reads.on_read_state(5, b"r1")  # answered: the reads wait for applied index 5
    reads.release(4)
    assert heard == []  # not applied far enough: nobody woken
    reads.release(5)
    assert heard == [[True, True]]
    reads.release(6)
    assert len(heard) == 1
