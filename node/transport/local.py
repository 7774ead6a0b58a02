"""This member as each of its links sees it: one value the sender and receiver share.

Every PeerSender and the Receiver need the same five things (whose ids go in the
stream headers, the tunables, the heartbeat the keep-alive and idle times derive
from, and the observer); the Transport builds them once instead of passing each
to every link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.transport.options import TransportOptions
    from node.transport.stats import TransportObserver


@dataclass(frozen=True, slots=True)
class LocalMember:
    """The local end of every link; `observer` is read at each event (it can be swapped)."""

    member_id: int
    cluster_id: int
    options: TransportOptions
    heartbeat_interval: float
    observer: Callable[[], TransportObserver]
    # A peer answered 410 Gone: this member was removed from the cluster.
    removed: Callable[[], None] = lambda: None
