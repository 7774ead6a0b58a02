"""The bounded window of in-flight MsgApp messages to one follower (flow control)."""

from __future__ import annotations

from collections import deque


class Inflights:
    """Last indexes (and byte sizes) of appends sent but not yet acknowledged, oldest first.

    Invariant: indexes strictly increase from left to right, so an acknowledgement of index i
    frees a prefix. The window is full at `size` messages or `max_bytes` payload bytes
    (0 = no byte limit); a full window pauses replication to the follower.
    """

    __slots__ = ("_q", "bytes", "max_bytes", "size")

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._q: deque[tuple[int, int]] = deque()

    def add(self, index: int, nbytes: int) -> None:
        """Record an append whose last entry is `index` carrying `nbytes` of payload."""
        if self.full():
            raise AssertionError("cannot add into a full inflights window")
        self._q.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, to: int) -> None:
        """Free every in-flight append whose last index is <= `to` (they were acknowledged)."""
        q = self._q
        while q and q[0][0] <= to:
            self.bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        """Free the oldest in-flight append (a heartbeat response proves the follower is alive)."""
        if self._q:
            self.bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        return len(self._q) >= self.size or (0 < self.max_bytes <= self.bytes)

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()
        self.bytes = 0
