"""Pending ReadIndex requests awaiting a heartbeat round that confirms leadership (thesis §6.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.raft.messages import Message


@dataclass(slots=True)
class ReadIndexStatus:
    """One read request: the commit index when it arrived and who has acknowledged it since."""

    req: Message
    index: int
    acks: dict[int, bool] = field(default_factory=dict)


class ReadOnly:
    """Read requests in arrival order, keyed by their (unique) request context.

    A heartbeat carries the newest pending context; an acknowledgement of it from a quorum
    confirms every request queued up to and including it, so one round serves a whole batch.
    """

    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        """Queue `m` at read index `index`; a duplicate context is ignored."""
        ctx = m.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(req=m, index=index)
        self.queue.append(ctx)

    def recv_ack(self, member: int, ctx: bytes) -> dict[int, bool] | None:
        """Record that `member` acknowledged the heartbeat carrying `ctx`; the acks so far."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks[member] = True
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release every request up to and including `ctx` (a quorum confirmed leadership)."""
        try:
            i = self.queue.index(ctx)
        except ValueError:
            return []
        done = self.queue[: i + 1]
        del self.queue[: i + 1]
        return [self.pending.pop(c) for c in done]

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
