"""Per-peer counters, fault settings and the metrics observer seam of the transport.

The transport never imports prometheus_client: counters live here as plain attributes
(cheap to bump on the hot path), the exporter reads them at scrape time, and events that
need a histogram (RTT, snapshot durations) are pushed through `TransportObserver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol


@dataclass(slots=True)
class PeerStats:
    """What one member knows about its traffic with one peer.

    Byte counts are frame bytes on the wire (length prefixes, keep-alives and streamed
    snapshot bodies included; HTTP chunk headers excluded), like etcd's
    etcd_network_peer_{sent,received}_bytes_total.
    """

    sent_bytes: int = 0  # -> etcd_network_peer_sent_bytes_total{To}
    received_bytes: int = 0  # -> etcd_network_peer_received_bytes_total{From}
    send_failures: int = 0  # -> etcd_network_peer_sent_failures_total{To}: every message lost
    receive_failures: int = 0  # -> etcd_network_peer_received_failures_total{From}
    # True while our outbound stream to the peer is established and no drop fault is set:
    # "this member can currently deliver to that peer" (etcd_network_active_peers).
    active: bool = False
    active_since: float = 0.0  # time.monotonic() when `active` last became true (0: not)
    disconnects: int = 0  # established streams that broke (etcd_network_disconnected_peers_total)
    messages_sent: int = 0  # messages handed to the socket
    messages_received: int = 0
    # Frames that decoded but that no honest member sends (screen.refusal): dropped before
    # the core, and each one also counted in receive_failures.
    messages_refused: int = 0
    dropped_overflow: int = 0  # queue full (subset of send_failures)
    dropped_disconnected: int = 0  # no stream (subset of send_failures)
    dropped_fault: int = 0  # drop fault active (subset of send_failures)
    probes_ok: int = 0
    probe_failures: int = 0
    last_rtt_seconds: float | None = None  # the last answered probe's own round trip
    srtt_seconds: float = 0.0  # the smoothed RTT the monitor observed last (rttmonitor.py)
    snapshot_send_success: int = 0  # -> etcd_network_snapshot_send_success{To}
    snapshot_send_failures: int = 0  # -> etcd_network_snapshot_send_failures{To}
    snapshot_send_inflight: int = 0  # -> etcd_network_snapshot_send_inflights_total{To}
    snapshot_receive_success: int = 0  # -> etcd_network_snapshot_receive_success{From}
    snapshot_receive_failures: int = 0  # -> etcd_network_snapshot_receive_failures{From}
    snapshot_receive_inflight: int = 0  # -> etcd_network_snapshot_receive_inflights_total{From}


# Why the receiver refused a peer request at admission: the `reason` label values of
# raftmon_network_peer_refused_total (exporter.catalog.PEER_REFUSAL_REASONS, same strings).
REFUSED_PROTOCOL = "protocol_mismatch"  # 412: another transport protocol version
REFUSED_CLUSTER = "cluster_id_mismatch"  # 412: X-Raftmon-Cluster-ID is not ours
REFUSED_RECIPIENT = "wrong_recipient"  # 412: X-Raftmon-To names another member
REFUSED_SENDER = "unknown_sender"  # 404: X-Raftmon-From is not a member of this cluster
REFUSED_IN_USE = "stream_in_use"  # 409: the member already has a live stream here
REFUSAL_REASONS = (
    REFUSED_PROTOCOL,
    REFUSED_CLUSTER,
    REFUSED_RECIPIENT,
    REFUSED_SENDER,
    REFUSED_IN_USE,
)


@dataclass(frozen=True, slots=True)
class PeerFault:
    """Lab fault on traffic from this member to one peer (applied on the sending side).

    `delay_seconds` holds every message at least that long before it is written,
    preserving order; `drop` discards everything, a one-way partition (set it on both
    members for a two-way one). The RTT probe and snapshots honour both, and the
    receiving member applies its own fault toward the prober to its probe answers.
    """

    delay_seconds: float = 0.0
    drop: bool = False

    def is_active(self) -> bool:
        return self.drop or self.delay_seconds > 0.0


NO_FAULT = PeerFault()


class TransportObserver(Protocol):
    """Events the exporter turns into histograms; called on the event loop, must not block.

    Each method's body is the no-op default (`NullObserver`).
    """

    def on_rtt(self, peer_id: int, seconds: float) -> None:
        """A monitor check's smoothed RTT to the peer, as etcd 3.4 observes it
        (etcd_network_peer_round_trip_time_seconds; rttmonitor.py)."""
        return None

    def on_probe(self, peer_id: int, seconds: float) -> None:
        """One answered probe's own round trip (no etcd family: the histogram gets the
        smoothed RTT through on_rtt; tests and diagnostics watch single probes)."""
        return None

    def on_snapshot_sent(self, peer_id: int, seconds: float, ok: bool) -> None:
        """A snapshot send finished (etcd_network_snapshot_send_total_duration_seconds)."""
        return None

    def on_snapshot_received(self, peer_id: int, seconds: float, ok: bool) -> None:
        """A snapshot receive finished (etcd_network_snapshot_receive_total_duration_seconds)."""
        return None

    def on_peer_refused(self, reason: str) -> None:
        """A peer request was refused at admission; `reason` is one of REFUSAL_REASONS
        (raftmon_network_peer_refused_total{reason}: etcd has no family for these)."""
        return None


class NullObserver(TransportObserver):
    """Observer that ignores everything: the default, and a base for partial observers."""


if TYPE_CHECKING:
    _: TransportObserver = NullObserver()
