"""etcd 3.4's native API: gRPC on the member's client URLs, beside the JSON gateway.

etcd serves gRPC and its JSON gateway on one port (cmux sorts connections by their
first bytes); a member does the same: `node.member.mux` hands each HTTP/2 connection
to `GrpcEndpoint.protocol()` and every other to aiohttp. The server is grpclib's
HTTP/2 protocol on the member's own event loop, so a call reaches the KV service with
no thread hop and no second port.

convert   etcd's messages <-> the KV service's request and answer types
calls     what wraps every method: limits, etcd's errors, etcd's metrics
services  the methods of KV, Lease, Watch, Maintenance and Cluster
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

import h2.config
from grpclib.config import Configuration
from grpclib.events import _DispatchServerEvents
from grpclib.protocol import H2Protocol
from grpclib.server import Handler

from node.api.grpc import services
from node.api.grpc.calls import Calls, LimitedCodec
from node.server.proposals import GRPC_OVERHEAD_BYTES

if TYPE_CHECKING:
    from node.api.observer import GatewayObserver
    from node.server import KVService


class GrpcEndpoint:
    """One member's gRPC server, without a listener of its own.

    grpclib's `Server` insists on owning its listening socket; the member's listener
    is shared, so this builds grpclib's per-connection pieces (a `Handler` of the
    method table, an `H2Protocol` over it) the way `Server` does, for each HTTP/2
    connection the mux hands over.
    """

    def __init__(self, svc: KVService, metrics: GatewayObserver[Any, Any]) -> None:
        calls: Calls[Any, Any] = Calls(
            metrics,
            has_leader=lambda: svc.server.lead != 0,
            leader_check_seconds=svc.server.cfg.election_timeout_ms / 1000,
        )
        self.mapping = services.MethodTable(m for build in services.ALL for m in build(svc, calls))
        self.mapping.update(services.unimplemented_methods(self.mapping, calls))
        # grpc-go's server limit in etcd: --max-request-bytes plus gRPC's overhead
        self._codec = LimitedCodec(svc.max_request_bytes + GRPC_OVERHEAD_BYTES)
        self._dispatch = _DispatchServerEvents()
        self._config = Configuration().__for_server__()
        self._h2_config = h2.config.H2Configuration(
            client_side=False,
            header_encoding="ascii",
            validate_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_inbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._handlers: weakref.WeakSet[Handler] = weakref.WeakSet()

    def protocol(self) -> H2Protocol:
        """The protocol of one new HTTP/2 connection."""
        handler = Handler(self.mapping, self._codec, None, self._dispatch)
        self._handlers.add(handler)
        return H2Protocol(handler, self._config, self._h2_config)

    async def close(self) -> None:
        """End every call in progress (streams included), as etcd's GracefulStop does."""
        handlers = list(self._handlers)
        for handler in handlers:
            handler.close()
        waits = [h.wait_closed() for h in handlers]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
