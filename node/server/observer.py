"""The server's instrumentation seam, and the one observer a member hands to every layer.

Each layer declares what it reports as a Protocol with a no-op default (node/wal:
`WalObserver`, node/mvcc: `BackendObserver`, node/transport: `TransportObserver`, and
here `ServerObserver`). `MemberObserver` is all four: exporter's `MemberMetrics`
satisfies it structurally, so no layer imports the exporter and none looks hooks up by
name. Server hooks run on the event loop and must not block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from node.mvcc.observer import BackendObserver, NullBackendObserver
from node.transport.stats import NullObserver as NullTransportObserver
from node.transport.stats import TransportObserver
from node.wal.observer import NullObserver as NullWalObserver
from node.wal.observer import WalObserver


class ServerObserver(Protocol):
    """Events of the Ready loop, apply, leases and health checks; durations in seconds.

    Each method's body is the no-op default (`NullServerObserver`).
    """

    def on_loop_lag(self, seconds: float) -> None:
        """The Raft tick ran `seconds` late (raftmon_server_event_loop_lag_seconds)."""
        return None

    def on_apply(self, seconds: float) -> None:
        """One Ready's committed entries applied (raftmon_server_apply_batch_duration_seconds)."""
        return None

    def on_apply_request(self, op: str, success: bool, seconds: float) -> None:
        """One request applied (etcd_server_apply_duration_seconds{op,success})."""
        return None

    def on_lease_granted(self, ttl_seconds: float) -> None:
        """A lease grant was applied."""
        return None

    def on_lease_renewed(self) -> None:
        """The leader renewed a lease (keep-alive)."""
        return None

    def on_lease_revoked(self) -> None:
        """A lease revoke was applied."""
        return None

    def on_lease_expired(self) -> None:
        """The leader found a lease expired and proposed its revoke."""
        return None

    def on_health(self, ok: bool) -> None:
        """A /health check answered (etcd_server_health_success / _failures)."""
        return None


class NullServerObserver(ServerObserver):
    """Discards every server event."""


class MemberObserver(WalObserver, BackendObserver, TransportObserver, ServerObserver, Protocol):
    """Every event of one member, as the exporter's MemberMetrics receives them."""


class NullMemberObserver(
    NullWalObserver, NullBackendObserver, NullTransportObserver, NullServerObserver
):
    """Discards every event of every layer: the default when no exporter is attached."""


if TYPE_CHECKING:
    _: MemberObserver = NullMemberObserver()
