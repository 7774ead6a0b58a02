"""Applier.answer_ahead: plain puts are answered from their committed entries, then applied.

The Ready loop calls it for a Ready that only commits (node/server/raft_loop.py): the
clients waiting on plain puts get their answers (the revision each will have) before
the apply, which then checks it produced exactly those. Anything else in the batch, a
defragment or snapshot hold, or no client waiting here keeps the old order: apply, then
answer. In-process, never started: the test hands the Applier its entries itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from node.mvcc import codec
from node.mvcc import requests as rq
from node.raft import EntryType
from node.raft.messages import Entry
from node.server import EtcdServer


def _entries(server: EtcdServer, requests: list[object]) -> list[Entry]:
    first = server.applier.applied_index + 1
    return [
        Entry(
            term=1,
            index=first + i,
            type=EntryType.EntryNormal,
            data=codec.encode_request(100 + i, r),
        )
        for i, r in enumerate(requests)
    ]


def _wait(server: EtcdServer, ids: list[int]) -> list[asyncio.Future[Any]]:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in ids]
    server.proposals.waiters.update(zip(ids, futures, strict=True))
    return futures


async def test_plain_puts_are_answered_before_the_apply_with_the_revisions_it_gives(
    server: EtcdServer,
) -> None:
    rev = server.kv.current_revision()
    entries = _entries(server, [rq.PutRequest(b"a", b"1"), rq.PutRequest(b"b", b"2")])
    futures = _wait(server, [100, 101])
    assert server.applier.answer_ahead(entries)
    assert [f.result().revision for f in futures] == [rev + 1, rev + 2]
    assert server.kv.current_revision() == rev  # answered, not applied yet
    server.applier.apply(entries)
    assert server.kv.current_revision() == rev + 2
    assert server.applier.applied_index == entries[-1].index
    assert server.kv.get(b"b") is not None
    assert server.counters.answers_ahead_wrong == 0


@pytest.mark.parametrize(
    "other",
    [
        rq.PutRequest(b"c", b"3", prev_kv=True),
        rq.PutRequest(b"c", b"3", lease=7),
        rq.DeleteRangeRequest(b"a"),
        rq.TxnRequest(success=[rq.PutRequest(b"c", b"3")]),
    ],
)
async def test_a_batch_with_anything_but_plain_puts_is_applied_first(
    server: EtcdServer, other: object
) -> None:
    entries = _entries(server, [rq.PutRequest(b"a", b"1"), other])
    futures = _wait(server, [100, 101])
    assert not server.applier.answer_ahead(entries)
    assert not any(f.done() for f in futures)
    server.applier.apply(entries)
    assert all(f.done() for f in futures)  # answered by the apply, as before


async def test_nothing_is_answered_ahead_while_applies_are_held_or_no_client_waits(
    server: EtcdServer,
) -> None:
    entries = _entries(server, [rq.PutRequest(b"a", b"1")])
    assert not server.applier.answer_ahead(entries)  # nobody waits here (a follower's case)
    futures = _wait(server, [100])
    server.applier.held = True  # a snapshot's checkpoint holds the store
    assert not server.applier.answer_ahead(entries)
    server.applier.held = False
    assert server.applier.answer_ahead(entries)
    assert futures[0].done()


async def test_an_apply_that_differs_from_the_answer_is_counted(server: EtcdServer) -> None:
    """A wrong prediction is a bug: the apply logs it and counts it (tests assert 0)."""
    entries = _entries(server, [rq.PutRequest(b"a", b"1")])
    _wait(server, [100])
    assert server.applier.answer_ahead(entries)
    server.applier._answered_ahead[entries[0].index] += 1  # as if predicted wrong
    server.applier.apply(entries)
    assert server.counters.answers_ahead_wrong == 1
