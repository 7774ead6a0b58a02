"""TurnShare: client slices take turns with the rest of the loop (no timing asserted)."""

from __future__ import annotations

import asyncio

from node.fairness import TurnShare


async def test_a_spent_budget_sends_every_other_slice_to_a_later_turn() -> None:
    # slice_seconds=0: a turn's budget is spent by its first slice, so no two slices
    # of the busy handlers may run in the same loop turn, and the loop's own work
    # (a callback that runs once per turn) runs between every two slices.
    share = TurnShare(slice_seconds=0.0)
    loop = asyncio.get_running_loop()
    turn = 0
    running = True

    def count_turn() -> None:
        nonlocal turn
        turn += 1
        if running:
            loop.call_soon(count_turn)

    loop.call_soon(count_turn)
    turns: list[int] = []

    async def busy() -> None:
        for _ in range(10):
            await share.turn()
            turns.append(turn)

    await asyncio.gather(*(busy() for _ in range(5)))
    running = False
    assert len(turns) == 50
    assert len(set(turns)) == 50
    assert share.waits > 0


async def test_with_budget_left_handlers_share_a_turn() -> None:
    share = TurnShare(slice_seconds=3600.0)
    done = 0

    async def busy() -> None:
        nonlocal done
        for _ in range(10):
            await share.turn()
        done += 1

    await asyncio.gather(*(busy() for _ in range(5)))
    assert done == 5
    assert share.waits == 0
