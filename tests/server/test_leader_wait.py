"""LeaderWait: calls bound for the leader wait for one, woken at once or by their look."""

from __future__ import annotations

import asyncio

import pytest

from node import errors as E
from node.server.context import Leadership
from node.server.leader_wait import LeaderWait


def test_a_known_leader_is_answered_at_once() -> None:
    async def main() -> int:
        wait = LeaderWait(Leadership(lead=7), poll_seconds=60)
        return await wait.leader(asyncio.get_running_loop().time() - 1)  # deadline passed

    assert asyncio.run(main()) == 7


def test_a_waiter_is_woken_when_a_leader_becomes_known() -> None:
    async def main() -> tuple[int, int]:
        seen = Leadership()
        wait = LeaderWait(seen, poll_seconds=60)  # only the wake can end this wait
        task = asyncio.ensure_future(wait.leader(asyncio.get_running_loop().time() + 60))
        for _ in range(100):
            if wait.waiting:
                break
            await asyncio.sleep(0)
        waiting = wait.waiting
        seen.lead = 3
        wait.wake()
        return waiting, await asyncio.wait_for(task, 30)

    assert asyncio.run(main()) == (1, 3)


def test_a_leader_known_without_a_wake_is_found_by_the_next_look() -> None:
    async def main() -> int:
        seen = Leadership()
        wait = LeaderWait(seen, poll_seconds=0.01)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, setattr, seen, "lead", 5)
        return await asyncio.wait_for(wait.leader(loop.time() + 60), 30)

    assert asyncio.run(main()) == 5


def test_no_leader_by_the_deadline_is_etcds_no_leader_and_leaves_no_waiter() -> None:
    async def main() -> LeaderWait:
        wait = LeaderWait(Leadership(), poll_seconds=0.01)
        with pytest.raises(E.ErrNoLeader):
            await wait.leader(asyncio.get_running_loop().time() + 0.05)
        return wait

    assert asyncio.run(main()).waiting == 0


def test_a_cancelled_waiter_leaves_no_waiter() -> None:
    async def main() -> int:
        wait = LeaderWait(Leadership(), poll_seconds=60)
        task = asyncio.ensure_future(wait.leader(asyncio.get_running_loop().time() + 60))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return wait.waiting

    assert asyncio.run(main()) == 0
