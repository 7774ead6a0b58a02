"""etcd's initial election tick advance (node/server/tick_advance.py), against a fake inbox.

The ticks are advanced once more than one peer is connected, by election_ticks - 2, and
through the inbox (the Ready loop feeds them to the core like the timer's); with fewer
connected peers nothing is advanced.
"""

from __future__ import annotations

import asyncio

from node.server.tick_advance import advance_election_ticks


class FakeInbox:
    def __init__(self) -> None:
        self.ticks = 0
        self.wake = asyncio.Event()


async def test_ticks_advance_by_election_ticks_minus_two_once_two_peers_are_connected() -> None:
    inbox = FakeInbox()
    answers = iter([0, 1, 2])
    advanced = await advance_election_ticks(
        inbox,  # type: ignore[arg-type]
        10,
        lambda: next(answers),
        wait_seconds=5.0,
        poll_seconds=0.001,
    )
    assert advanced == 8
    assert inbox.ticks == 8
    assert inbox.wake.is_set()


async def test_nothing_is_advanced_while_at_most_one_peer_is_connected() -> None:
    inbox = FakeInbox()
    polls: list[int] = []

    def one_peer() -> int:
        polls.append(1)
        return 1

    advanced = await advance_election_ticks(
        inbox,  # type: ignore[arg-type]
        10,
        one_peer,
        wait_seconds=0.05,
        poll_seconds=0.005,
    )
    assert advanced == 0
    assert inbox.ticks == 0
    assert not inbox.wake.is_set()
    assert len(polls) == 10  # it gave up after wait_seconds, as etcd after ConnReadTimeout


async def test_a_peer_coming_up_is_looked_at_without_waiting_for_the_next_poll() -> None:
    inbox = FakeInbox()
    peer_up = asyncio.Event()
    connected = [0]

    async def peers_connect() -> None:
        for count in (1, 2):
            await asyncio.sleep(0)
            connected[0] = count
            peer_up.set()

    task = asyncio.ensure_future(peers_connect())
    async with asyncio.timeout(5.0):  # the poll alone would look only after 60 s
        advanced = await advance_election_ticks(
            inbox,  # type: ignore[arg-type]
            10,
            lambda: connected[0],
            peer_up=peer_up,
            wait_seconds=600.0,
            poll_seconds=60.0,
        )
    await task
    assert advanced == 8
    assert inbox.ticks == 8


async def test_given_the_ticks_left_it_leaves_two_plus_the_members_rank() -> None:
    """Members' first campaigns after a restart of all of them come a tick apart by rank."""
    left = {}
    for rank in (0, 1, 2):
        inbox = FakeInbox()
        inbox.ticks = 1  # a timer tick not yet fed to the core
        advanced = await advance_election_ticks(
            inbox,  # type: ignore[arg-type]
            10,
            lambda: 2,
            until_campaign=lambda: 17,
            rank=rank,
            wait_seconds=1.0,
            poll_seconds=0.001,
        )
        left[rank] = 17 - inbox.ticks
        assert advanced == 17 - 1 - 2 - rank
    assert left == {0: 2, 1: 3, 2: 4}


async def test_it_never_winds_the_timer_back() -> None:
    inbox = FakeInbox()
    advanced = await advance_election_ticks(
        inbox,  # type: ignore[arg-type]
        10,
        lambda: 2,
        until_campaign=lambda: 3,
        rank=2,
        wait_seconds=1.0,
        poll_seconds=0.001,
    )
    assert advanced == 0
    assert inbox.ticks == 0
