"""The Ready loop's inbox: what the outside world hands the Raft core between turns.

The transport's callbacks, the tick timer, client proposals and reads and the member's
own reports (unreachable peers, snapshot status, campaign, leader transfer) all land
here and wake the loop; only the Ready loop drains it, so only the loop touches the core
(except stepping a peer message while the loop awaits an fsync, which the core allows).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.raft import RawNode
    from node.raft.messages import Message

log = logging.getLogger(__name__)


class Inbox:
    """What the outside world hands the core, queued until the loop's next turn.

    Filled by the transport's callbacks, the tick timer and the member's own reports;
    drained only by the Ready loop.
    """

    def __init__(self, node: RawNode) -> None:
        self._node = node
        self.wake = asyncio.Event()
        # Set when a stream to a peer comes up: the initial tick advance looks then
        # (tick_advance.py), not only at its next poll.
        self.peer_became_active = asyncio.Event()
        self.ticks = 0
        self.messages: list[Message] = []
        self.reports: list[Callable[[], None]] = []
        self.snapshots: dict[int, str] = {}  # index -> db image received from the leader
        self.persisting = False  # True while the loop awaits a WAL fsync

    def on_peer_message(self, msg: Message) -> None:
        if self.persisting:
            # The loop is waiting on an fsync: step now, so e.g. follower acks are counted
            # the moment our own write is durable (the core allows step between ready
            # and advance; what it produces goes out in the next Ready).
            self.step(msg)
        else:
            self.messages.append(msg)
        self.wake.set()

    def step(self, msg: Message) -> None:
        try:
            self._node.step(msg)
        except Exception as err:  # a bad peer message must not kill the member
            log.warning(
                "dropped peer message",
                extra={"fields": {"type": msg.type.name, "error": str(err)}},
            )

    def on_peer_snapshot(self, msg: Message, path: str) -> None:
        assert msg.snapshot is not None
        self.snapshots[msg.snapshot.metadata.index] = path
        self.on_peer_message(msg)

    def on_unreachable(self, peer: int) -> None:
        self.report(lambda: self._node.report_unreachable(peer))

    def on_peer_active(self, peer: int) -> None:
        """Our stream to `peer` connected: a leader heartbeats it now (RawNode.heartbeat),
        so a restarted follower's catch-up does not wait for the next heartbeat tick."""
        self.peer_became_active.set()
        self.report(lambda: self._node.heartbeat(peer))

    def on_snapshot_status(self, peer: int, failed: bool) -> None:
        self.report(lambda: self._node.report_snapshot(peer, failed))

    def report(self, call: Callable[[], None]) -> None:
        """Run `call` against the core on the loop's next turn (a local event, not a message)."""
        self.reports.append(call)
        self.wake.set()

    def wake_loop(self) -> None:
        self.wake.set()
