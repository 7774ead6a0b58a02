"""The pieces of clientv3's concurrency recipe the lock and election services share."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from node import errors as E
from node.api.errors import GrpcCode, Status, status
from node.mvcc import requests as rq
from node.server import concurrency as cc


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"lock/", b"lock0"),
        (b"/", b"0"),
        (b"a\xff", b"b"),
        (b"a\xff\xff", b"b"),
        (b"\xff\xff", b"\x00"),  # no end: every key from the prefix on
    ],
)
def test_a_prefix_ends_where_clientv3_ends_it(prefix: bytes, end: bytes) -> None:
    assert cc.prefix_end(prefix) == end


def test_a_waiters_key_is_its_lease_in_hex_as_go_prints_it() -> None:
    assert cc.waiter_key(b"lock/", 0x390DA24853CD5307) == b"lock/390da24853cd5307"
    assert cc.waiter_key(b"/", 4660) == b"/1234"
    assert cc.waiter_key(b"x/", -1) == b"x/-1"


def test_the_owner_is_the_oldest_key_and_the_waited_for_the_newest_older_one() -> None:
    owner = cc.first_created(b"e/")
    assert (owner.range_end, owner.limit) == (b"e0", 1)
    assert (owner.sort_target, owner.sort_order) == (rq.SortTarget.CREATE, rq.SortOrder.ASCEND)
    before = cc.last_created_up_to(b"e/", 41)
    assert (before.sort_order, before.max_create_revision, before.limit) == (
        rq.SortOrder.DESCEND,
        41,
        1,
    )


@pytest.mark.parametrize(
    "err", [E.ErrLeaseNotFound(), E.ErrNoLeader(), E.ErrKeyNotProvided(), E.ErrCompacted()]
)
def test_an_inner_calls_error_keeps_its_text_and_answers_unknown(err: E.EtcdError) -> None:
    with pytest.raises(E.EtcdError) as caught, cc.as_client():
        raise err
    assert status(caught.value) == Status(GrpcCode.UNKNOWN, err.message)


@pytest.mark.parametrize(
    "err", [E.ErrElectionNotLeader(), E.ErrElectionNoLeader(), E.ErrMissingLeaderKey()]
)
def test_the_election_errors_answer_unknown_with_etcds_text(err: E.EtcdError) -> None:
    assert status(err).code == GrpcCode.UNKNOWN
    assert status(err).http_status == 500


async def test_a_clean_up_finishes_even_when_its_caller_is_cancelled_again() -> None:
    done = asyncio.Event()
    release = asyncio.Event()

    async def cleanup() -> None:
        await release.wait()
        done.set()

    caller = asyncio.ensure_future(cc.cleanup_on_cancel(cleanup))
    await asyncio.sleep(0)
    caller.cancel()  # the caller gives up; the clean-up goes on
    release.set()
    await asyncio.wait_for(done.wait(), timeout=5)
    assert not cc._CLEANUPS or all(t.done() for t in cc._CLEANUPS)


def _failing(errors: list[E.EtcdError]) -> tuple[list[int], Any]:
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "answer"

    return calls, call


async def test_a_repeatable_call_is_retried_while_there_is_no_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cc, "RETRY_BACKOFF_SECONDS", 0.0)
    calls, call = _failing([E.ErrNoLeader(), E.ErrLeaderChanged()])
    assert await cc.repeatable(call) == "answer"
    assert len(calls) == 3


@pytest.mark.parametrize("err", [E.ErrTimeout(), E.ErrLeaseNotFound(), E.ErrStopped()])
async def test_other_errors_are_not_retried(err: E.EtcdError) -> None:
    calls, call = _failing([err])
    with pytest.raises(type(err)):
        await cc.repeatable(call)
    assert len(calls) == 1


async def test_retries_end_after_clientv3s_hundred_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cc, "RETRY_BACKOFF_SECONDS", 0.0)
    calls, call = _failing([E.ErrNoLeader() for _ in range(200)])
    with pytest.raises(E.ErrNoLeader):
        await cc.repeatable(call)
    assert len(calls) == cc.RETRY_ATTEMPTS
