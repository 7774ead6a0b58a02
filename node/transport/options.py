"""Tunables of the peer transport, with the reasoning behind each default."""

from __future__ import annotations

from dataclasses import dataclass

from node.transport.codec import DEFAULT_MAX_FRAME


@dataclass(frozen=True, kw_only=True, slots=True)
class TransportOptions:
    """Knobs the driver rarely touches and tests shrink; all durations in seconds."""

    # Per-peer outbound queue, in messages; etcd's streamWriter buffer is 4096 too. Full
    # means the peer is slower than we produce: dropping is safe (Raft retransmits).
    queue_size: int = 4096
    # Bytes the stream's socket may hold unsent (after the kernel's buffers filled) before
    # further messages are dropped: a peer that stopped reading must not grow it forever.
    write_buffer_limit: int = 16 * 1024 * 1024
    # Time from dialling to the stream's response headers. A stopped (SIGSTOP) peer still
    # completes the TCP handshake from the kernel backlog, so this bound matters.
    dial_timeout: float = 1.0
    # Reconnect backoff: small first delay so a restarted peer is reached quickly, doubling
    # up to the cap so a dead peer costs about one connection attempt per second.
    backoff_initial: float = 0.02
    backoff_max: float = 1.0
    # RTT probing, as etcd's prober: every second, and once right after each connect.
    probe_interval: float = 1.0
    probe_timeout: float = 2.0
    # etcd_network_peer_round_trip_time_seconds observes a smoothed RTT this often while
    # the peer is healthy (etcd 3.4's fixed 30 s; rttmonitor.py); the lab shortens it.
    rtt_monitor_interval: float = 30.0
    # An idle stream gets a 4-byte keep-alive frame after this long (None: heartbeat
    # interval), so a broken connection is noticed by the writer, and the receiver can
    # close a stream that went silent for `idle_timeout` (None: max(5 s, 20 heartbeats),
    # etcd's ConnReadTimeout is 5 s).
    keepalive_interval: float | None = None
    idle_timeout: float | None = None
    # Snapshot streaming: read and send the db image in chunks this big.
    snapshot_chunk_size: int = 1024 * 1024
    # Time a snapshot receiver may take to answer after the last byte (it fsyncs the file).
    snapshot_response_timeout: float = 60.0
    # Largest frame a receiver accepts before declaring the stream corrupt.
    max_frame: int = DEFAULT_MAX_FRAME

    def keepalive(self, heartbeat_interval: float) -> float:
        if self.keepalive_interval is not None:
            return self.keepalive_interval
        return heartbeat_interval

    def idle(self, heartbeat_interval: float) -> float:
        if self.idle_timeout is not None:
            return self.idle_timeout
        return max(5.0, 20 * heartbeat_interval)

    def validate(self) -> None:
        """Reject settings that would make the transport spin or never send."""
        if self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if self.write_buffer_limit < 0:
            raise ValueError("write_buffer_limit must be >= 0")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        for name in ("dial_timeout", "probe_interval", "probe_timeout", "rtt_monitor_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.snapshot_chunk_size < 1:
            raise ValueError("snapshot_chunk_size must be >= 1")
