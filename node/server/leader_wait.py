"""Waiting for a leader: what a call bound for the leader does while none is known.

etcd's waitLeader (v3_server.go) holds a lease renewal, a lease time-to-live or a
learner promotion that a follower forwards until the member knows a leader, and answers
"etcdserver: no leader" only when the request's timeout ends first. So an election costs
those calls latency, not errors, as it costs proposals and reads (proposals.py,
read_index.py). etcd looks again every election timeout; here the Ready loop's "a
leader is known" wakes the waiters at once, and a look every `poll_seconds` covers a
leader that became known without that wake (one that came and went in one Ready).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from node import errors as E

if TYPE_CHECKING:
    from node.server.context import Leadership


def _settle(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


class LeaderWait:
    """Calls waiting until this member knows a leader, woken when the Ready loop sees one."""

    def __init__(self, leadership: Leadership, poll_seconds: float) -> None:
        self._leadership = leadership
        self._poll = poll_seconds
        self._waiters: set[asyncio.Future[None]] = set()

    def wake(self) -> None:
        """A leader is known: every waiter looks again."""
        for fut in self._waiters:
            _settle(fut)

    async def leader(self, deadline: float) -> int:
        """The leader's member id once one is known (at once if one is).

        `deadline` is on the event loop's clock (`loop.time()`). Raises ErrNoLeader when
        it passes with no leader known, etcd's answer from waitLeader.
        """
        loop = asyncio.get_running_loop()
        while (lead := self._leadership.lead) == 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise E.ErrNoLeader()
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            timer = loop.call_later(min(remaining, self._poll), _settle, fut)
            try:
                await fut
            finally:
                timer.cancel()
                self._waiters.discard(fut)
        return lead

    @property
    def waiting(self) -> int:
        """Calls waiting for a leader now (for tests and the curious)."""
        return len(self._waiters)
