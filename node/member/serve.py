"""Run one member: build its server and listeners, serve until a signal, shut down in order.

Raft first, aiohttp later: the peer port listens on plain asyncio (node.transport.peerport),
so the member starts its Raft node, connects its peers and can win an election while a
thread imports aiohttp and the HTTP applications (~0.2 s of CPU: three members restarted
together share two cores, and the first election waits for the last of them to connect).
Requests on the peer port other than Raft streams and snapshot uploads wait for aiohttp;
then the client listener opens once the member is published, as before.

Shutdown is orderly: stop accepting, stop the server, close the WAL last.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from node.dataclass_cache import save_installed
from node.errors import EtcdError
from node.member.deferred_observer import DeferredObserver
from node.member.gctune import tune_after_start
from node.member.late_protocol import LateProtocol
from node.member.system_roots import DeferredRootLoads, all_plain_http
from node.member.tls_accept import TLSAcceptor
from node.member.watchdog import start_from_env as start_watchdog
from node.server import EtcdServer, KVService
from node.server.identity import resolve_identity
from node.tls import TLSInfo, server_context
from node.transport.peerport import PeerPort

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import ModuleType

    from aiohttp import web

    from exporter.metrics import MemberMetrics
    from node.api.grpc import GrpcEndpoint
    from node.config import MemberConfig

log = logging.getLogger(__name__)


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a listen URL; the peer and the aiohttp listeners both use it."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"URL {url!r} needs a host and a port")
    return parts.hostname, parts.port


async def _listen_peers(
    port: PeerPort, urls: tuple[str, ...], info: TLSInfo
) -> list[Callable[[], Awaitable[None]]]:
    """One plain-asyncio listener per peer URL (https: TLS from `info`, as etcd); the
    coroutine functions that close them."""
    context = server_context(info) if any(u.startswith("https://") for u in urls) else None
    loop = asyncio.get_running_loop()
    closers: list[Callable[[], Awaitable[None]]] = []
    for url in urls:
        host, number = host_port(url)
        if url.startswith("https://"):
            assert context is not None
            acceptor = TLSAcceptor(
                host, number, ssl_context=context, listener="peer", protocol_factory=port.protocol
            )
            await acceptor.start()
            closers.append(acceptor.stop)
            continue
        if not info.empty:
            log.warning(
                "the scheme of %s url %s is HTTP while key/cert files are presented; "
                "ignored key/cert files",
                "peer",
                url,
            )
        server = await loop.create_server(port.protocol, host, number, reuse_address=True)

        async def close(server: asyncio.AbstractServer = server) -> None:
            server.close()

        closers.append(close)
    return closers


# The HTTP side: aiohttp (~0.19 s of CPU to import, its client side included), the JSON
# gateway and the member's applications. Imported in a thread once the member's peers are
# connected (or a leader is known, or START_SETTLE_SECONDS passed), when the RTT probe
# process starts too: three members restarted together share two cores, the first
# election waits for the last of them to connect to its peers, and this work in the first
# two delayed the third (issue 17's restart run).
# The exporter comes with it (node.member.deferred_observer says why).
HTTP_SIDE_MODULES = (
    "node.member.app",
    "node.member.sites",
    "exporter.metrics",
    "node.member.state",
)
START_SETTLE_SECONDS = 1.0  # at most this long a member waits for its peers before serving
# The probe process (node.transport.prober) starts once the member serves clients: its
# interpreter's start (~30 ms of CPU, with the member's fork) came while three members
# restarted together imported their HTTP sides on two cores, before their first write.
# A member that cannot serve yet (a new member before its first leader) starts it this
# long after its start settled: RTT telemetry matters most when there is no leader.
PROBING_AFTER_SETTLE_SECONDS = 2.0
START_SETTLE_POLL_SECONDS = 0.005
# Lab and tests: hold the HTTP side back until a leader is known (at most this many
# seconds), to show that Raft runs, peers connect and a leader is elected without it
# (tests/member/test_raft_first.py).
HTTP_SIDE_AFTER_LEADER_ENV = "RAFTMON_HTTP_SIDE_AFTER_LEADER_SECONDS"


# After the member serves, the system CA bundle's loads its import deferred run in a
# thread (node.member.system_roots says why): later than a restart's first write.
ROOT_LOADS_DELAY_SECONDS = 2.0


def _import_http_side(roots: DeferredRootLoads | None) -> tuple[ModuleType, ...]:
    if roots is None:
        return tuple(importlib.import_module(name) for name in HTTP_SIDE_MODULES)
    with roots.recording():
        return tuple(importlib.import_module(name) for name in HTTP_SIDE_MODULES)


def _build_metrics(
    cfg: MemberConfig, server: EtcdServer, observer: DeferredObserver
) -> MemberMetrics:
    """The exporter (its modules imported with the HTTP side), fed what the member
    reported so far and from then on everything."""
    from exporter.metrics import MemberMetrics
    from node.member.state import ServerStateSource

    metrics = MemberMetrics(extensive=cfg.metrics == "extensive")
    metrics.bind_peers(server.peer_ids)
    metrics.attach_state(ServerStateSource(server))
    replayed = observer.attach(metrics)
    log.debug("exporter attached", extra={"fields": {"replayed-events": replayed}})
    return metrics


def _known_urls(cfg: MemberConfig) -> list[str]:
    """Every URL the member knows at start: its own and its initial peers'."""
    own = (*cfg.listen_client_urls, *cfg.advertise_client_urls, *cfg.listen_peer_urls)
    return [*own, *cfg.initial_advertise_peer_urls, *(u for m in cfg.members for u in m.peer_urls)]


async def _load_roots_later(roots: DeferredRootLoads, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), ROOT_LOADS_DELAY_SECONDS)
    if not stop.is_set():
        loaded = await asyncio.to_thread(roots.load)
        log.debug("loaded the system CA bundle", extra={"fields": {"contexts": loaded}})


def _settled(server: EtcdServer) -> bool:
    """Every peer connected, or a leader known: the start's critical part is over."""
    if server.lead != 0:
        return True
    return all(server.transport.can_deliver(p) for p in server.peer_ids)


async def _wait_for(done: Callable[[], bool], seconds: float, stop: asyncio.Event) -> None:
    """Poll `done` until it holds, `stop` is set or `seconds` passed (no error)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not done() and not stop.is_set():  # noqa: ASYNC110 - a bounded poll
                await asyncio.sleep(START_SETTLE_POLL_SECONDS)


async def _http_side(
    server: EtcdServer, stop: asyncio.Event, roots: DeferredRootLoads | None
) -> tuple[Any, Any]:
    """Import the HTTP side and the exporter in a thread once the start settled (after a
    leader, if the environment asks so); with `roots`, its CA bundle loads are deferred
    there."""
    await _wait_for(lambda: _settled(server), START_SETTLE_SECONDS, stop)
    # RTT probes (and the probe process) start once the member serves, or this long
    # after the start settled if it cannot serve yet (no leader to publish through).
    loop = asyncio.get_running_loop()
    loop.call_later(PROBING_AFTER_SETTLE_SECONDS, server.transport.start_probing)
    hold = float(os.environ.get(HTTP_SIDE_AFTER_LEADER_ENV, "0") or 0)
    if hold > 0:
        await _wait_for(lambda: server.lead != 0, hold, stop)
    before = "aiohttp" in sys.modules
    app, sites, *_ = await asyncio.to_thread(_import_http_side, roots)
    log.info(
        "imported the HTTP side",
        extra={
            "fields": {
                "aiohttp-imported-before": str(before).lower(),
                "leader": f"{server.lead:x}",
                "active-peers": str(sum(server.transport.can_deliver(p) for p in server.peer_ids)),
            }
        },
    )
    return app, sites


# The gRPC side (protobuf's runtime, etcd's stubs, HTTP/2: ~60 modules, ~20 ms of CPU)
# is imported in a thread once the client listener serves HTTP/1; gRPC connections made
# before wait for it (node.member.late_protocol). Three members restarted together share
# two cores while they import their HTTP sides, and a restart's first write waits for
# the first of them to serve (tests/bench/test_restart_bench.py): imported before the
# listener opened, it delayed that by its share of the cores.
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
    observer = DeferredObserver()  # until the exporter is built (after Raft runs)
    cfg = await resolve_identity(cfg)
    server = EtcdServer(cfg, observer=observer)
    # What start-up built lives as long as the process: out of the collector's sight
    # (main() paused collection while it was built), then collection resumes.
    gc.freeze()
    gc.enable()
    service = KVService(server)
    runners: list[web.AppRunner] = []
    grpc: GrpcEndpoint | None = None
    http2 = LateProtocol()  # gRPC's connections: served once its side is imported
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    peer_port = PeerPort(server.transport)
    peer_listeners: list[Callable[[], Awaitable[None]]] = []
    roots = DeferredRootLoads() if all_plain_http(_known_urls(cfg)) else None
    roots_loaded: asyncio.Future[None] | None = None
    try:
        peer_listeners = await _listen_peers(peer_port, cfg.listen_peer_urls, cfg.peer_tls)
        server.transport.defer_probing()  # started once the start settled (_http_side)
        await server.start()
        app, sites = await _http_side(server, stop, roots)
        metrics = _build_metrics(cfg, server, observer)
        peer_runner = app.create_peer_runner(server)
        await peer_runner.setup()
        runners.append(peer_runner)
        peer_port.serve_http(peer_runner.server)
        if not await _ready(server, stop):
            return
        client_runner = app.create_client_runner(server, service, metrics)
        await client_runner.setup()
        runners.append(client_runner)
        await sites.listen(client_runner, cfg.listen_client_urls, cfg.client_tls, "client", http2)
        if cfg.listen_metrics_urls:
            metrics_runner = app.create_metrics_runner(server, metrics)
            await metrics_runner.setup()
            runners.append(metrics_runner)
            # etcd serves https metrics URLs with the client certificate and CA
            await sites.listen(metrics_runner, cfg.listen_metrics_urls, cfg.client_tls, "metrics")
        log.info(
            "serving",
            extra={
                "fields": {
                    "name": cfg.name,
                    "local-member-id": f"{cfg.member_id:x}",
                    "cluster-id": f"{cfg.cluster_id:x}",
                    "client-urls": list(cfg.listen_client_urls),
                    "peer-urls": list(cfg.listen_peer_urls),
                    # CPU this process spent to get here (a restart's cost, on shared cores)
                    "cpu-seconds": f"{time.process_time():.3f}",
                }
            },
        )
        server.transport.start_probing()
        grpc = (await asyncio.to_thread(_import_client_side))(service, metrics)
        http2.set(grpc.protocol)  # gRPC connections made meanwhile were waiting for it
        save_installed()  # the HTTP and gRPC sides' dataclass methods too, for the next start
        tune_after_start()  # the start-up heap is built: no full collection rescans it
        if roots is not None:
            roots_loaded = asyncio.ensure_future(_load_roots_later(roots, stop))
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
        if roots_loaded is not None:
            roots_loaded.cancel()
        http2.close()
        if grpc is not None:
            with contextlib.suppress(Exception):
                await grpc.close()
        for close in peer_listeners:
            with contextlib.suppress(Exception):
                await close()
        peer_port.close()
        for runner in reversed(runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        with contextlib.suppress(Exception):
            await service.close()
        with contextlib.suppress(EtcdError):
            await server.stop()
