"""The member's three aiohttp applications and their small handlers.

A member serves three kinds of listener, as etcd does: client URLs (the v3 JSON
gateway, /health, /version, /metrics), peer URLs (Raft streams and snapshots, and the
member info other members ask for) and optional metrics URLs (/metrics, /health, and
with --enable-fault-injection the /raftmon/faults endpoints the lab drives).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from exporter.http import metrics_handler
from node.api import gateway, gateway_lock
from node.config import CLUSTER_VERSION, ETCD_VERSION
from node.errors import EtcdError
from node.member.cors import add_cors
from node.member.faults import clear_faults, get_faults, set_faults
from node.member.http import SERVER, json_response
from node.server import GRPC_OVERHEAD_BYTES, EtcdServer, KVService, corruption
from node.transport.peerclient import (
    CLUSTER_ID_HEADER,
    MEMBER_INFO_PATH,
    MEMBERS_PATH,
    PEER_HASHKV_PATH,
)

if TYPE_CHECKING:
    from exporter.metrics import MemberMetrics


async def health(request: web.Request) -> web.Response:
    """etcd 3.4's /health: true when the member has a leader and no alarm is raised."""
    server = request.app[SERVER]
    if server.lead == 0:
        reason = "RAFT NO LEADER"
    else:
        alarms = server.kv.alarms()
        reason = "ALARM " + ",".join(a[1] for a in alarms) if alarms else ""
    server.observer.on_health(not reason)
    if reason:
        return json_response({"health": "false", "reason": reason}, 503)
    return json_response({"health": "true"})


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    if server.lead == 0:
        return web.Response(text="[-]leader failed: no leader\nreadyz check failed", status=503)
    return web.Response(text="ok")


async def version(request: web.Request) -> web.Response:
    return json_response({"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION})


# ---- applications ---------------------------------------------------------
def create_client_app(
    server: EtcdServer, service: KVService, metrics: MemberMetrics
) -> web.Application:
    # bodies are base64 JSON: ~4/3 of etcd's protobuf size limit, checked precisely later
    app = web.Application(
        client_max_size=(server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES) * 3 // 2
    )
    app[SERVER] = server
    gateway.add_routes(app, service, metrics)
    gateway_lock.add_routes(app, service, metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics_handler(metrics.registry))
    add_cors(app, server.cfg.cors)  # before the fallback: it answers every OPTIONS
    gateway.add_fallback(app)  # last: it answers whatever no route above matched
    return app


def create_metrics_app(server: EtcdServer, metrics: MemberMetrics) -> web.Application:
    app = web.Application()
    app[SERVER] = server
    app.router.add_get("/metrics", metrics_handler(metrics.registry))
    app.router.add_get("/health", health)
    if server.cfg.enable_fault_injection:
        app.router.add_get("/raftmon/faults", get_faults)
        app.router.add_post("/raftmon/faults", set_faults)
        app.router.add_delete("/raftmon/faults", clear_faults)
    return app


async def member_info(request: web.Request) -> web.Response:
    """Who this member is, for peers that need its client URLs (member list, forwarding)."""
    server = request.app[SERVER]
    return json_response(
        {
            "ID": str(server.member_id),
            "name": server.cfg.name,
            "clientURLs": list(server.cfg.advertise_client_urls),
        }
    )


async def peer_hash_kv(request: web.Request) -> web.Response:
    """etcd's GET /members/hashkv: this member's HashKV for a peer's corruption check.

    Plain-text errors with status 400 as etcd's (the mvcc error text says which).
    """
    server = request.app[SERVER]
    try:
        revision = corruption.parse_peer_request(await request.read())
    except ValueError:
        return web.Response(text="error unmarshalling request\n", status=400)
    try:
        resp = await server.hash_kv(revision)
    except EtcdError as err:
        return web.Response(text=corruption.mvcc_error_text(err) + "\n", status=400)
    return web.json_response(
        corruption.peer_answer(resp), headers={"X-Etcd-Cluster-ID": f"{server.cluster_id:x}"}
    )


async def peer_members(request: web.Request) -> web.Response:
    """etcd's GET /members on the peer URL: the members, for a member joining the cluster."""
    server = request.app[SERVER]
    members = [
        {
            "id": f"{m.id:x}",
            "name": m.name,
            "peerURLs": list(m.peer_urls),
            "clientURLs": list(m.client_urls),
            "isLearner": m.is_learner,
        }
        for m in server.membership.sorted()
    ]
    return web.json_response(members, headers={CLUSTER_ID_HEADER: f"{server.cluster_id:x}"})


def create_peer_app(server: EtcdServer) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SERVER] = server
    server.transport.add_routes(app)
    app.router.add_get(MEMBER_INFO_PATH, member_info)
    app.router.add_get(PEER_HASHKV_PATH, peer_hash_kv)
    app.router.add_get(MEMBERS_PATH, peer_members)
    return app


# ---- runners (serve.py creates them without importing aiohttp itself) ------
def create_peer_runner(server: EtcdServer) -> web.AppRunner:
    """The peer application's runner; its server takes the peer port's non-stream requests."""
    return web.AppRunner(create_peer_app(server), access_log=None, shutdown_timeout=2.0)


def create_client_runner(
    server: EtcdServer, service: KVService, metrics: MemberMetrics
) -> web.AppRunner:
    return web.AppRunner(create_client_app(server, service, metrics), access_log=None)


def create_metrics_runner(server: EtcdServer, metrics: MemberMetrics) -> web.AppRunner:
    return web.AppRunner(create_metrics_app(server, metrics), access_log=None)
