"""The member process: listeners, lifecycle and the lab's fault-injection endpoints.

A member serves three kinds of listener, as etcd does: client URLs (the v3
JSON gateway, /health, /version, /metrics), peer URLs (Raft streams and
snapshots) and optional metrics URLs (/metrics, /health, and with
--enable-fault-injection the /raftmon/faults endpoints the lab drives).
Shutdown is orderly: stop accepting, stop the driver, close the WAL last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from exporter.http import metrics_handler
from exporter.metrics import MemberMetrics
from node.api import gateway
from node.config import CLUSTER_VERSION, ETCD_VERSION, MemberConfig
from node.driver import MEMBER_INFO_PATH, RaftDriver
from node.errors import EtcdError
from node.kvserver import KVService
from node.member_state import DriverStateSource
from node.tls import TLSInfo, server_context
from node.tls_listener import TLSSite

log = logging.getLogger(__name__)

DRIVER = web.AppKey("driver", RaftDriver)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


async def health(request: web.Request) -> web.Response:
    """etcd 3.4's /health: true when the member has a leader and no alarm is raised."""
    driver = request.app[DRIVER]
    observer = driver.observer
    if driver.lead == 0:
        reason = "RAFT NO LEADER"
    else:
        alarms = driver.kv.alarms()
        reason = "ALARM " + ",".join(a[1] for a in alarms) if alarms else ""
    if observer is not None:
        observer.on_health(not reason)
    if reason:
        return _json({"health": "false", "reason": reason}, 503)
    return _json({"health": "true"})


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    driver = request.app[DRIVER]
    if driver.lead == 0:
        return web.Response(text="[-]leader failed: no leader\nreadyz check failed", status=503)
    return web.Response(text="ok")


async def version(request: web.Request) -> web.Response:
    return _json({"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION})


# ---- fault injection (metrics listener, --enable-fault-injection only) -------
async def get_faults(request: web.Request) -> web.Response:
    driver = request.app[DRIVER]
    return _json(fault_state(driver))


def fault_state(driver: RaftDriver) -> dict[str, Any]:
    peers = {
        f"{peer:x}": {"delay_seconds": f.delay_seconds, "drop": f.drop}
        for peer, f in driver.transport.faults().items()
        if f.delay_seconds or f.drop
    }
    return {
        "wal_fsync_delay_seconds": driver.wal.fsync_delay_seconds,
        "ticks_paused": driver.faults.ticks_paused,
        "peers": peers,
    }


async def set_faults(request: web.Request) -> web.Response:
    """POST {"wal_fsync_delay_seconds": 0.03, "ticks_paused": false,
    "peers": {"<member id hex or name>": {"delay_seconds": 0.05, "drop": false}}}.

    Fields left out keep their value; DELETE clears everything.
    """
    driver = request.app[DRIVER]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        if "wal_fsync_delay_seconds" in body:
            driver.set_fsync_delay(fault_delay(body["wal_fsync_delay_seconds"], "wal_fsync"))
        if "ticks_paused" in body:
            driver.faults.ticks_paused = bool(body["ticks_paused"])
        for key, spec in dict(body.get("peers") or {}).items():
            peer = resolve_member(driver, str(key))
            if not isinstance(spec, dict):
                raise ValueError(f"peer {key!r}: expected an object")
            delay = fault_delay(spec.get("delay_seconds", 0.0), "delay")
            driver.transport.set_fault(
                peer, delay_seconds=delay, drop=bool(spec.get("drop", False))
            )
    except (ValueError, TypeError, KeyError) as err:
        return _json({"error": str(err), "message": str(err), "code": 3}, 400)
    log.warning("fault injection changed", extra={"fields": fault_state(driver)})
    return _json(fault_state(driver))


MAX_FAULT_DELAY_SECONDS = 60.0


def fault_delay(value: Any, name: str) -> float:
    """A lab delay: a JSON number of seconds in [0, 60], refused otherwise.

    Without the bound, 1e308 s overflows the first timer that uses it and kills the
    member, and NaN or a negative delay make no sense to anyone reading the lab.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}_seconds must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not 0.0 <= seconds <= MAX_FAULT_DELAY_SECONDS:  # NaN fails both comparisons
        raise ValueError(
            f"{name}_seconds must be between 0 and {MAX_FAULT_DELAY_SECONDS:g}, got {value!r}"
        )
    return seconds


async def clear_faults(request: web.Request) -> web.Response:
    driver = request.app[DRIVER]
    driver.set_fsync_delay(0.0)
    driver.faults.ticks_paused = False
    driver.transport.clear_faults()
    log.warning("fault injection cleared")
    return _json(fault_state(driver))


def resolve_member(driver: RaftDriver, key: str) -> int:
    for spec in driver.cfg.members:
        if key in (spec.name, f"{spec.member_id:x}", str(spec.member_id)):
            if spec.member_id == driver.member_id:
                raise ValueError("a member cannot fault its own traffic")
            return spec.member_id
    raise KeyError(f"unknown member {key!r}")


# ---- applications ---------------------------------------------------------
def create_client_app(
    driver: RaftDriver, service: KVService, metrics: MemberMetrics
) -> web.Application:
    # bodies are base64 JSON: ~4/3 of etcd's protobuf size limit, checked precisely later
    app = web.Application(client_max_size=(driver.cfg.max_request_bytes + 512 * 1024) * 3 // 2)
    app[DRIVER] = driver
    gateway.add_routes(app, service, metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics_handler(metrics.registry))
    gateway.add_fallback(app)  # last: it answers whatever no route above matched
    return app


def create_metrics_app(driver: RaftDriver, metrics: MemberMetrics) -> web.Application:
    app = web.Application()
    app[DRIVER] = driver
    app.router.add_get("/metrics", metrics_handler(metrics.registry))
    app.router.add_get("/health", health)
    if driver.cfg.enable_fault_injection:
        app.router.add_get("/raftmon/faults", get_faults)
        app.router.add_post("/raftmon/faults", set_faults)
        app.router.add_delete("/raftmon/faults", clear_faults)
    return app


async def member_info(request: web.Request) -> web.Response:
    """Who this member is, for peers that need its client URLs (member list, forwarding)."""
    driver = request.app[DRIVER]
    return _json(
        {
            "ID": str(driver.member_id),
            "name": driver.cfg.name,
            "clientURLs": list(driver.cfg.advertise_client_urls),
        }
    )


def create_peer_app(driver: RaftDriver) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[DRIVER] = driver
    driver.transport.add_routes(app)
    app.router.add_get(MEMBER_INFO_PATH, member_info)
    return app


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"URL {url!r} needs a host and a port")
    return parts.hostname, parts.port


async def _listen(runner: web.AppRunner, urls: tuple[str, ...], info: TLSInfo, what: str) -> None:
    """Start one site per URL: https URLs get TLS from `info`, http URLs ignore it (as etcd)."""
    context = server_context(info) if any(u.startswith("https://") for u in urls) else None
    for url in urls:
        host, port = _host_port(url)
        if url.startswith("https://"):
            assert context is not None
            await TLSSite(runner, host, port, ssl_context=context, listener=what).start()
            continue
        if not info.empty:
            log.warning(
                "the scheme of %s url %s is HTTP while key/cert files are presented; "
                "ignored key/cert files",
                what,
                url,
            )
        await web.TCPSite(runner, host, port, reuse_address=True).start()


async def serve(cfg: MemberConfig) -> None:
    """Run one member until SIGINT/SIGTERM."""
    metrics = MemberMetrics()
    driver = RaftDriver(cfg, observer=metrics)
    metrics.attach_state(DriverStateSource(driver))
    metrics.bind_peers(driver.peer_ids)
    service = KVService(driver)
    runners: list[web.AppRunner] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        peer_runner = web.AppRunner(create_peer_app(driver), access_log=None, shutdown_timeout=2.0)
        await peer_runner.setup()
        runners.append(peer_runner)
        await _listen(peer_runner, cfg.listen_peer_urls, cfg.peer_tls, "peer")
        await driver.start()
        client_runner = web.AppRunner(create_client_app(driver, service, metrics), access_log=None)
        await client_runner.setup()
        runners.append(client_runner)
        await _listen(client_runner, cfg.listen_client_urls, cfg.client_tls, "client")
        if cfg.listen_metrics_urls:
            metrics_runner = web.AppRunner(create_metrics_app(driver, metrics), access_log=None)
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
        await stop.wait()
        log.info("received signal; shutting down")
    finally:
        for runner in reversed(runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        with contextlib.suppress(Exception):
            await service.close()
        with contextlib.suppress(EtcdError):
            await driver.stop()
