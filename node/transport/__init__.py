"""Peer transport over aiohttp: long-lived batched streams, reconnect, RTT probes, snapshots.

Modules, one job each: `codec` (binary frames), `peer` (one peer's outbound stream and
prober), `receiver` (the inbound HTTP handlers), `snapshot` (streamed db images),
`stats` (counters, faults, the metrics observer seam), `options` (tunables), `wire`
(paths and headers), `transport` (the `Transport` facade the driver uses).

Nothing here imports prometheus_client or the Raft core's logic; only its message types.
"""

from node.transport.options import TransportOptions
from node.transport.stats import NullObserver, PeerFault, PeerStats, TransportObserver
from node.transport.transport import Transport

__all__ = [
    "NullObserver",
    "PeerFault",
    "PeerStats",
    "Transport",
    "TransportObserver",
    "TransportOptions",
]
