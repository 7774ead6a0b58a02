"""etcd 3.4's native API: gRPC on the member's client URLs, beside the JSON gateway.

etcd serves gRPC and its JSON gateway on one port (cmux sorts connections by their
first bytes); a member does the same: `node.member.mux` hands each HTTP/2 connection
to `GrpcEndpoint.protocol()` and every other to aiohttp. The server is a lean
HTTP/2 protocol for gRPC on the member's own event loop (node.api.grpc.http2), so a
call reaches the KV service with no thread hop and no second port.

convert   etcd's messages <-> the KV service's request and answer types
http2     gRPC's HTTP/2: frames, flow control, one connection's calls
calls     what wraps every method: limits, etcd's errors, etcd's metrics
services  the methods of KV, Lease, Watch, Maintenance and Cluster
concurrency  v3lockpb.Lock and v3electionpb.Election
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from node.api.grpc import concurrency, services
from node.api.grpc.calls import Calls
from node.api.grpc.http2 import AnswerBatch, GrpcConnection
from node.errors import ErrMessageTooLarge
from node.server.proposals import GRPC_OVERHEAD_BYTES

if TYPE_CHECKING:
    from node.api.observer import GatewayObserver
    from node.server import KVService


class GrpcEndpoint:
    """One member's gRPC server, without a listener of its own (the mux hands it connections)."""

    def __init__(self, svc: KVService, metrics: GatewayObserver[Any, Any]) -> None:
        calls: Calls[Any, Any] = Calls(
            metrics,
            has_leader=lambda: svc.server.lead != 0,
            leader_check_seconds=svc.server.cfg.election_timeout_ms / 1000,
        )
        builders = (*services.ALL, concurrency.lock_methods, concurrency.election_methods)
        self.methods = dict(m for build in builders for m in build(svc, calls))
        self.methods.update(services.unimplemented_methods(self.methods, calls))
        # grpc-go's receive limit in etcd: --max-request-bytes plus gRPC's overhead
        self.limit = svc.max_request_bytes + GRPC_OVERHEAD_BYTES
        self._connections: set[GrpcConnection] = set()
        # The answers an apply batch wakes leave one write per connection, not one per call.
        self._answers = AnswerBatch()
        svc.server.add_wake_listener(self._answers.open)

    def _too_large(self, size: int) -> Exception:
        return ErrMessageTooLarge(size, self.limit)

    def protocol(self) -> GrpcConnection:
        """The protocol of one new HTTP/2 connection."""
        conn = GrpcConnection(
            self.methods,
            self.limit,
            self._too_large,
            on_close=self._connections.discard,
            batch=self._answers,
        )
        self._connections.add(conn)
        return conn

    async def close(self) -> None:
        """GOAWAY to every client and end every call in progress (streams included)."""
        for conn in list(self._connections):
            conn.close()
        await asyncio.sleep(0)  # let the cancelled calls unwind
