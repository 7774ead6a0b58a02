"""Peer transport: long-lived batched streams, reconnect, RTT probes, snapshots.

Streams and snapshot uploads run on plain asyncio, so a member connects its peers and
takes a snapshot before it imports aiohttp (`httphead`); plain probes and member info use
aiohttp once it is there.

Modules, one job each: `codec` (binary frames), `peer` (one peer's outbound stream and
prober), `dial` (a stream's dial), `peerport` (the peer listener's first bytes: streams
and uploads here, the rest to aiohttp), `receiver` (the inbound side), `snapshot` (streamed db
images), `stats` (counters, faults, the metrics observer seam), `options` (tunables),
`wire` (paths and headers), `httphead` (the HTTP/1.1 heads a stream needs), `transport`
(the `Transport` facade the driver uses).

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
