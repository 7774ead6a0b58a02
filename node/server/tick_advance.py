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


async def advance_election_ticks(
    inbox: Inbox,
    election_ticks: int,
    active_peers: Callable[[], int],
    *,
    peer_up: asyncio.Event | None = None,
    wait_seconds: float = WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Fast-forward the election ticks once more than one peer is connected; returns the
    ticks advanced (0 when no peers connected within `wait_seconds`)."""
    looks = max(1, round(wait_seconds / poll_seconds))
    for _ in range(looks):
        if peer_up is None:
            await asyncio.sleep(poll_seconds)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer_up.wait(), poll_seconds)
            peer_up.clear()
        if active_peers() > 1:
            ticks = max(0, election_ticks - 2)
            log.info(
                "fast-forwarding election ticks",
                extra={"fields": {"forward-ticks": ticks, "election-ticks": election_ticks}},
            )
            inbox.ticks += ticks
            inbox.wake.set()
            return ticks
    return 0
