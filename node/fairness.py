"""A share of each event-loop turn for client stream work, so Raft's turn always comes.

One asyncio loop runs the Raft tick, the heartbeats, peer I/O and every client.
Go's scheduler preempts a busy goroutine; asyncio does not: a handler that finds
its input already buffered never suspends. Twenty connections streaming lease
keep-alives kept the leader's loop so busy that its tick ran seconds late and
the followers elected someone else (issue #18, finding 4); etcd, preempted,
kept its leader.

So long-running client work (stream messages, big answers) goes in slices: before
each slice a handler awaits `TurnShare.turn()`. The first slice of a loop turn
starts the turn's budget; once the turn has used `slice_seconds` of client work,
every other handler waits for the next turn. asyncio runs, in each turn, the I/O
callbacks and due timers first, then the ready callbacks: so whatever the number
of busy clients, the tick and the Raft loop wait at most one budget plus one
slice, and busy clients take turns in FIFO order.

A base module: the KV service holds the member's one share and every front end
takes its slices from it.
"""

from __future__ import annotations

import asyncio
import time

DEFAULT_SLICE_SECONDS = 0.005  # 5% of the 100 ms heartbeat; many turns per tick


class TurnShare:
    """The client work budget of the current loop turn (see the module docstring)."""

    def __init__(self, slice_seconds: float = DEFAULT_SLICE_SECONDS) -> None:
        self.slice_seconds = slice_seconds
        self._started = 0.0
        self._open = False  # a turn's budget is running; closed by a callback next turn
        self.waits = 0  # times a handler was sent to the next turn (diagnostics)

    def _spent(self) -> bool:
        now = time.perf_counter()
        if not self._open:
            self._open = True
            self._started = now
            # Queued now, this runs in the NEXT turn, and opens that turn's budget.
            asyncio.get_running_loop().call_soon(self._close)
            return False
        return now - self._started > self.slice_seconds

    def _close(self) -> None:
        self._open = False

    async def turn(self) -> None:
        """Return when this turn still has budget; always lets the loop run once."""
        await asyncio.sleep(0)
        while self._spent():
            self.waits += 1
            await asyncio.sleep(0)
