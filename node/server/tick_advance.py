"""etcd's initial election tick advance: a restarted member elects without a full timeout.

A member that starts counts its election timeout from zero, so after all members restart
the first election waits out a whole randomized timeout (1 to 2 s with etcd's defaults)
although every peer is already there. etcd 3.4 (`adjustTicks`, on by default with
--initial-election-tick-advance) waits up to rafthttp's ConnReadTimeout (5 s), checking
every 50 ms, until more than one peer is connected, then fast-forwards election_ticks - 2
ticks: two ticks stay, so a leader that already exists still has time to be heard before
this member campaigns (and PreVote keeps a member that missed it from disrupting it).
With no connected peers it advances nothing: advancing would only start elections that
cannot win.

What is left after etcd's fast-forward is still the random part of the timeout (2 to 11
ticks), so after a restart of every member the first campaign came 0.2-1.1 s after they
connected (0.39 s median at 10k keys, `make bench`). Given `until_campaign` (the core's
ticks left) and this member's `rank` among the voters (its place in their sorted ids),
the fast-forward leaves exactly 2 + rank ticks instead: the same two ticks to hear an
existing leader, and the members' first campaigns about one tick (100 ms, far more than
a vote's round trip and fsync) apart, give or take when each saw its peers connect, so
they seldom split the vote. A member whose log is
behind loses its PreVote without disturbing the others' timers, and the next in rank
campaigns a tick later, where a random draw could leave the up-to-date member a full
timeout to wait. Later elections draw their timeouts at random, as Raft's.

The ticks go through the inbox like the timer's, so the Ready loop feeds them to the core
one `tick()` at a time, as etcd's raftNode.advanceTicks calls Tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.server.inbox import Inbox

log = logging.getLogger(__name__)

WAIT_SECONDS = 5.0  # etcd's rafthttp.ConnReadTimeout
# etcd looks every 50 ms. This looks when a stream to a peer comes up (`peer_up`) and at
# least every 10 ms: after a restart of every member, a poll alone put the advance (and
# so the first election) on average 5 ms after the last peer connected; the event, at it.
POLL_SECONDS = 0.01
KEEP_TICKS = 2  # etcd's: time to hear a leader that already exists


async def advance_election_ticks(
    inbox: Inbox,
    election_ticks: int,
    active_peers: Callable[[], int],
    *,
    peer_up: asyncio.Event | None = None,
    until_campaign: Callable[[], int] | None = None,
    rank: int = 0,
    wait_seconds: float = WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Fast-forward the election ticks once more than one peer is connected; returns the
    ticks advanced (0 when no peers connected within `wait_seconds`). Without
    `until_campaign`, etcd's election_ticks - 2; with it, to KEEP_TICKS + rank ticks left
    (the timer's ticks still in the inbox count as gone)."""
    looks = max(1, round(wait_seconds / poll_seconds))
    for _ in range(looks):
        if peer_up is None:
            await asyncio.sleep(poll_seconds)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer_up.wait(), poll_seconds)
            peer_up.clear()
        if active_peers() > 1:
            if until_campaign is None:
                ticks = max(0, election_ticks - KEEP_TICKS)
            else:
                ticks = max(0, until_campaign() - inbox.ticks - KEEP_TICKS - rank)
            log.info(
                "fast-forwarding election ticks",
                extra={"fields": {"forward-ticks": ticks, "election-ticks": election_ticks}},
            )
            inbox.ticks += ticks
            inbox.wake.set()
            return ticks
    return 0
