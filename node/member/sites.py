"""The member's aiohttp listeners: client and metrics URLs (and the gRPC mux on them).

Imported in a thread once the Raft node runs (serve.py): everything here needs aiohttp.
The peer URLs are not here: they listen on plain asyncio (node.transport.peerport).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from node.member.mux import MuxSite, router_factory
from node.member.serve import host_port
from node.member.tls_site import TLSSite
from node.tls import TLSInfo, server_context

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

log = logging.getLogger("node.member.serve")  # the name operators' log filters know


async def listen(
    runner: web.AppRunner,
    urls: tuple[str, ...],
    info: TLSInfo,
    what: str,
    grpc: Callable[[], asyncio.BaseProtocol] | None = None,
) -> None:
    """Start one site per URL: https URLs get TLS from `info`, http URLs ignore it (as etcd).

    With `grpc` (the protocol factory of HTTP/2 connections), each site serves gRPC and
    HTTP/1 on its one port (node.member.mux).
    """
    context = server_context(info) if any(u.startswith("https://") for u in urls) else None
    factory = router_factory(runner, grpc) if grpc is not None else None
    if context is not None and grpc is not None:
        # The server's order decides: a client offering both (curl, browsers: the JSON
        # gateway) gets HTTP/1.1; gRPC clients offer only h2 (grpcio's C core refuses a
        # TLS connection without it) and get h2, which the router hands to gRPC.
        context.set_alpn_protocols(["http/1.1", "h2"])
    for url in urls:
        host, port = host_port(url)
        if url.startswith("https://"):
            assert context is not None
            await TLSSite(
                runner, host, port, ssl_context=context, listener=what, protocol_factory=factory
            ).start()
            continue
        if not info.empty:
            log.warning(
                "the scheme of %s url %s is HTTP while key/cert files are presented; "
                "ignored key/cert files",
                what,
                url,
            )
        if factory is not None:
            await MuxSite(runner, host, port, factory).start()
        else:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
