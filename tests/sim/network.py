"""A seeded, simulated network between Raft members: drops, delays, duplicates, partitions.

Time is the simulation's tick counter. `send` decides a message's fate once (dropped, delayed,
duplicated) from the seeded generator, so a seed replays exactly.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace

from node.raft import Message, MessageType


@dataclass(order=True, slots=True)
class _InFlight:
    due: int
    seq: int
    msg: Message = field(compare=False)


class Network:
    """Messages in flight between members, with configurable faults (etcd's test network)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = 0
        self._seq = 0
        self._queue: list[_InFlight] = []
        self.drop_perc: dict[tuple[int, int], float] = {}  # (frm, to) -> drop probability
        self.cuts: set[tuple[int, int]] = set()  # unordered pairs that cannot talk
        self.ignored: set[MessageType] = set()
        self.max_delay = 0  # extra ticks a message may wait (reorders across ticks)
        self.delay_perc = 0.0  # probability a message is delayed at all
        self.dup_perc = 0.0  # probability a message is delivered twice
        self.dropped = 0
        self.delivered = 0
        # MsgSnap lost in flight: the sender's transport would report the failure.
        self.lost_snapshots: list[Message] = []

    # -- faults ----------------------------------------------------------------------------
    def drop(self, frm: int, to: int, perc: float) -> None:
        self.drop_perc[(frm, to)] = perc

    def cut(self, a: int, b: int) -> None:
        self.cuts.add((min(a, b), max(a, b)))

    def isolate(self, member: int, members: list[int]) -> None:
        for other in members:
            if other != member:
                self.cut(member, other)

    def partition(self, *groups: list[int]) -> None:
        """Only members of the same group can talk."""
        for i, ga in enumerate(groups):
            for gb in groups[i + 1 :]:
                for a in ga:
                    for b in gb:
                        self.cut(a, b)

    def heal(self) -> None:
        self.cuts.clear()

    def ignore(self, t: MessageType) -> None:
        self.ignored.add(t)

    def delay(self, perc: float, max_ticks: int) -> None:
        self.delay_perc = perc
        self.max_delay = max_ticks

    def duplicate(self, perc: float) -> None:
        self.dup_perc = perc

    def recover(self) -> None:
        """Remove every fault (messages already in flight are still delivered)."""
        self.drop_perc.clear()
        self.cuts.clear()
        self.ignored.clear()
        self.max_delay = 0
        self.delay_perc = 0.0
        self.dup_perc = 0.0

    # -- traffic ---------------------------------------------------------------------------
    def blocked(self, frm: int, to: int) -> bool:
        return (min(frm, to), max(frm, to)) in self.cuts

    def send(self, m: Message) -> bool:
        """Queue `m` for delivery; False if the network dropped it."""
        if m.type in self.ignored or self.blocked(m.frm, m.to):
            self.dropped += 1
            return False
        perc = self.drop_perc.get((m.frm, m.to), 0.0)
        rng = self.rng
        if perc and rng.random() < perc:
            self.dropped += 1
            return False
        copies = 2 if self.dup_perc and rng.random() < self.dup_perc else 1
        for i in range(copies):
            if i or m.type == MessageType.MsgProp:
                # Every delivery is a fresh decoding on the wire: the leader stamps term and
                # index onto proposed entries, so copies must not share them.
                m = replace(m, entries=[replace(e) for e in m.entries])
            due = self.now
            if self.delay_perc and rng.random() < self.delay_perc:
                due += rng.randint(1, self.max_delay)
            self._seq += 1
            heapq.heappush(self._queue, _InFlight(due, self._seq, m))
        return True

    def due(self) -> list[Message]:
        """Messages whose delivery time has come, in (time, send order)."""
        q = self._queue
        popped: list[_InFlight] = []
        while q and q[0].due <= self.now:
            popped.append(heapq.heappop(q))
        return self._arrive(popped)

    def _arrive(self, items: list[_InFlight]) -> list[Message]:
        """The messages that reach their member, in order; the partitioned ones are lost."""
        out: list[Message] = []
        for it in items:
            # A partition that formed while the message was in flight still drops it.
            if self.blocked(it.msg.frm, it.msg.to):
                self.dropped += 1
                if it.msg.type == MessageType.MsgSnap:
                    self.lost_snapshots.append(it.msg)
                continue
            out.append(it.msg)
        self.delivered += len(out)
        return out

    def due_to(self, member: int) -> list[Message]:
        """The due messages addressed to one member only (the rest stay in flight)."""
        now = self.now
        mine = sorted(it for it in self._queue if it.due <= now and it.msg.to == member)
        if not mine:
            return []
        self._queue = [it for it in self._queue if not (it.due <= now and it.msg.to == member)]
        heapq.heapify(self._queue)
        return self._arrive(mine)

    def drop_to(self, member: int) -> None:
        """Forget messages in flight to a crashed member."""
        self.lost_snapshots.extend(
            it.msg
            for it in self._queue
            if it.msg.to == member and it.msg.type == MessageType.MsgSnap
        )
        self._queue = [it for it in self._queue if it.msg.to != member]
        heapq.heapify(self._queue)

    def pending(self) -> int:
        return len(self._queue)
