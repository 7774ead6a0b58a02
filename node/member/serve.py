"""Run one member: build its server and listeners, serve until a signal, shut down in order.

Shutdown is orderly: stop accepting, stop the server, close the WAL last.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from exporter.metrics import MemberMetrics
from node.errors import EtcdError
from node.member.app import create_client_app, create_metrics_app, create_peer_app
from node.member.gctune import tune_after_start
from node.member.mux import MuxSite, router_factory
from node.member.state import ServerStateSource
from node.member.tls_site import TLSSite
from node.member.watchdog import start_from_env as start_watchdog
from node.server import EtcdServer, KVService
from node.server.identity import resolve_identity
from node.tls import TLSInfo, server_context

if TYPE_CHECKING:
    from node.api.grpc import GrpcEndpoint
    from node.config import MemberConfig

log = logging.getLogger(__name__)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"URL {url!r} needs a host and a port")
    return parts.hostname, parts.port


async def _listen(
    runner: web.AppRunner,
    urls: tuple[str, ...],
    info: TLSInfo,
    what: str,
    grpc: GrpcEndpoint | None = None,
) -> None:
    """Start one site per URL: https URLs get TLS from `info`, http URLs ignore it (as etcd).

    With `grpc`, each site serves gRPC and HTTP/1 on its one port (node.member.mux).
    """
    context = server_context(info) if any(u.startswith("https://") for u in urls) else None
    factory = router_factory(runner, grpc.protocol) if grpc is not None else None
    if context is not None and grpc is not None:
        # The server's order decides: a client offering both (curl, browsers: the JSON
        # gateway) gets HTTP/1.1; gRPC clients offer only h2 (grpcio's C core refuses a
        # TLS connection without it) and get h2, which the router hands to gRPC.
        context.set_alpn_protocols(["http/1.1", "h2"])
    for url in urls:
        host, port = _host_port(url)
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


# The gRPC side (protobuf's runtime, etcd's stubs, HTTP/2: ~60 modules, ~21 ms of CPU)
# is needed only once the client listener opens, after the Raft node runs (and, for a
# new member, after its first leader). It is imported in a thread once the Raft loop
# runs instead of before the peer listener: three members restarted together share two
# cores, and the first election waits for the last of them to connect to its peers
# (tests/bench/test_restart_bench.py).
CLIENT_SIDE_MODULE = "node.api.grpc"


def _import_client_side() -> type[GrpcEndpoint]:
    module = importlib.import_module(CLIENT_SIDE_MODULE)
    endpoint: type[GrpcEndpoint] = module.GrpcEndpoint
    return endpoint


async def _ready(server: EtcdServer, stop: asyncio.Event) -> bool:
    """Wait until the cluster lists this member as started (etcd's ReadyNotify: a member
    serves clients only once its attributes are published); False when stopped first."""
    waits = [asyncio.ensure_future(e.wait()) for e in (server.published, stop, server.removed)]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()
    if not server.published.is_set():
        return False
    log.info("ready to serve client requests")
    return True


async def serve(cfg: MemberConfig) -> None:
    """Run one member until SIGINT/SIGTERM."""
    metrics = MemberMetrics(extensive=cfg.metrics == "extensive")
    cfg = await resolve_identity(cfg)
    server = EtcdServer(cfg, observer=metrics)
    # What start-up built lives as long as the process: out of the collector's sight
    # (main() paused collection while it was built), then collection resumes.
    gc.freeze()
    gc.enable()
    metrics.attach_state(ServerStateSource(server))
    metrics.bind_peers(server.peer_ids)
    service = KVService(server)
    runners: list[web.AppRunner] = []
    grpc: GrpcEndpoint | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        peer_runner = web.AppRunner(create_peer_app(server), access_log=None, shutdown_timeout=2.0)
        await peer_runner.setup()
        runners.append(peer_runner)
        await _listen(peer_runner, cfg.listen_peer_urls, cfg.peer_tls, "peer")
        await server.start()
        client_side = asyncio.ensure_future(asyncio.to_thread(_import_client_side))
        if not await _ready(server, stop):
            with contextlib.suppress(Exception):
                await client_side  # the thread cannot be cancelled: let it finish
            return
        client_runner = web.AppRunner(create_client_app(server, service, metrics), access_log=None)
        await client_runner.setup()
        runners.append(client_runner)
        grpc = (await client_side)(service, metrics)
        await _listen(client_runner, cfg.listen_client_urls, cfg.client_tls, "client", grpc)
        if cfg.listen_metrics_urls:
            metrics_runner = web.AppRunner(create_metrics_app(server, metrics), access_log=None)
            await metrics_runner.setup()
            runners.append(metrics_runner)
            # etcd serves https metrics URLs with the client certificate and CA
            await _listen(metrics_runner, cfg.listen_metrics_urls, cfg.client_tls, "metrics")
        log.info(
            "serving",
            extra={
                "fields": {
                    "name": cfg.name,
                    "local-member-id": f"{cfg.member_id:x}",
                    "cluster-id": f"{cfg.cluster_id:x}",
                    "client-urls": list(cfg.listen_client_urls),
                    "peer-urls": list(cfg.listen_peer_urls),
                }
            },
        )
        tune_after_start()  # the start-up heap is built: no full collection rescans it
        watchdog = start_watchdog()  # RAFTMON_STALL_WATCHDOG_MS: log the loop's stalls
        removed = asyncio.ensure_future(server.removed.wait())
        signalled = asyncio.ensure_future(stop.wait())
        await asyncio.wait((removed, signalled), return_when=asyncio.FIRST_COMPLETED)
        for waiting in (removed, signalled):
            waiting.cancel()
        if watchdog is not None:
            watchdog.stop()
        if server.removed.is_set():
            log.warning("stopping: the member has been permanently removed from the cluster")
        else:
            log.info("received signal; shutting down")
    finally:
        if grpc is not None:
            with contextlib.suppress(Exception):
                await grpc.close()
        for runner in reversed(runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        with contextlib.suppress(Exception):
            await service.close()
        with contextlib.suppress(EtcdError):
            await server.stop()
