"""etcd 3.4's gateway paths for v3lock and v3election: /v3/lock/* and /v3/election/*.

The paths are the http annotations of etcd's v3lock.proto and v3election.proto; the
JSON is jsonpb's (proto field names, int64 as strings, bytes as base64, zero values
left out), and errors render through node.api.errors like every other gateway call.
Observe is a server stream: one `{"result": LeaderResponse}` line per announcement.

Lock and Campaign may wait for as long as another client holds the lock or the lead.
aiohttp does not cancel a handler whose client went away, so these calls watch their
connection and cancel the wait when it closes: the service then withdraws the
waiter's key, as etcd does when a gRPC client cancels (else a lock would be granted
to nobody and held until its lease ends).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.api import codec
from node.api.errors import GrpcCode, status
from node.api.gateway import Handler, ended_on_shutdown, error_response, make_unary, read_body
from node.errors import EtcdError
from node.server import election, lock

if TYPE_CHECKING:
    from node.api.observer import DurationT, GatewayObserver, RpcT
    from node.server import KVService

LOCK = "v3lockpb.Lock"
ELECTION = "v3electionpb.Election"
DISCONNECT_CHECK_SECONDS = 0.5  # how often a waiting Lock/Campaign looks at its connection


# ---- JSON -> values ---------------------------------------------------------------
def _bytes(body: dict[str, Any], name: str) -> bytes:
    return codec.b64decode(codec.field(body, name))


def _int(body: dict[str, Any], name: str) -> int:
    return codec.to_int(codec.field(body, name))


def leader_key(body: dict[str, Any]) -> election.LeaderKey | None:
    """The request's `leader` field; None when absent or null (etcd's nil LeaderKey)."""
    value = codec.field(body, "leader")
    if value is None:
        return None
    inner = codec.message(value)
    return election.LeaderKey(
        name=_bytes(inner, "name"),
        key=_bytes(inner, "key"),
        rev=_int(inner, "rev"),
        lease=_int(inner, "lease"),
    )


# ---- values -> JSON -----------------------------------------------------------------
def leader_key_json(k: election.LeaderKey) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if k.name:
        out["name"] = codec.b64(k.name)
    if k.key:
        out["key"] = codec.b64(k.key)
    if k.rev:
        out["rev"] = str(k.rev)
    if k.lease:
        out["lease"] = str(k.lease)
    return out


def leader_response_json(svc: KVService, resp: election.LeaderResponse) -> dict[str, Any]:
    return {"header": svc.header(resp.revision), "kv": codec.kv_json(resp.kv)}


# ---- handlers -----------------------------------------------------------------------
async def lock_lock(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await lock.lock(svc, _bytes(body, "name"), _int(body, "lease"))
    out: dict[str, Any] = {"header": svc.header(resp.revision)}
    if resp.key:
        out["key"] = codec.b64(resp.key)
    return out


async def lock_unlock(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    resp = await lock.unlock(svc, _bytes(body, "key"))
    return {"header": svc.header(resp.revision)}


async def election_campaign(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    name, lease, value = _bytes(body, "name"), _int(body, "lease"), _bytes(body, "value")
    resp = await election.campaign(svc, name, lease, value)
    return {"header": svc.header(resp.revision), "leader": leader_key_json(resp.leader)}


async def election_proclaim(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    leader = leader_key(body)
    revision = await election.proclaim(svc, leader, _bytes(body, "value"))
    return {"header": svc.header(revision)}


async def election_leader(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    return leader_response_json(svc, await election.leader(svc, _bytes(body, "name")))


async def election_resign(svc: KVService, body: dict[str, Any]) -> dict[str, Any]:
    revision = await election.resign(svc, leader_key(body))
    return {"header": svc.header(revision)}


# path (after /v3), service, method, handler, whether it may wait for other clients
UNARY_ROUTES: list[tuple[str, str, str, Handler, bool]] = [
    ("/lock/lock", LOCK, "Lock", lock_lock, True),
    ("/lock/unlock", LOCK, "Unlock", lock_unlock, False),
    ("/election/campaign", ELECTION, "Campaign", election_campaign, True),
    ("/election/proclaim", ELECTION, "Proclaim", election_proclaim, False),
    ("/election/leader", ELECTION, "Leader", election_leader, False),
    ("/election/resign", ELECTION, "Resign", election_resign, False),
]


# ---- waiting while the client is there ------------------------------------------------
def _connection_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def while_connected(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Cancel `handler` when the client's connection closes before it answers.

    aiohttp reports a lost connection to nobody while a handler runs (handler
    cancellation is off), so the connection is looked at every
    DISCONNECT_CHECK_SECONDS; the handler's own clean-up runs before this returns.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        task = asyncio.ensure_future(handler(request))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=DISCONNECT_CHECK_SECONDS)
                if not task.done() and _connection_gone(request):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return web.Response(status=499)  # nobody reads it: the client left
            return task.result()
        finally:
            if not task.done():  # this handler was cancelled (shutdown)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return handle


# ---- Observe: a server stream ---------------------------------------------------------
def make_observe(
    svc: KVService, rpc: RpcT, metrics: GatewayObserver[RpcT, DurationT]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        metrics.stream_started(rpc)
        code = GrpcCode.OK
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            raw = await read_body(request, svc.max_request_bytes)
            metrics.stream_received(rpc, 1, len(raw))
            name = _bytes(codec.parse_body(raw), "name")
            async with contextlib.aclosing(election.observe(svc, name)) as announcements:
                async for announcement in announcements:
                    line = codec.dumps({"result": leader_response_json(svc, announcement)})
                    if not response.prepared:  # as grpc-gateway: the head comes with the first
                        await response.prepare(request)
                    await response.write(line + b"\n")
                    metrics.stream_sent(rpc, len(line) + 1)
        except EtcdError as err:
            st = status(err)
            code = st.code
            if not response.prepared:
                return error_response(st)
        except (ConnectionResetError, asyncio.CancelledError):
            code = GrpcCode.CANCELED
            raise
        finally:
            metrics.stream_finished(rpc, code.title)
        if not response.prepared:  # the stream ended before its first message
            await response.prepare(request)
        return response

    return handle


WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def counted_from_first_call(make: Callable[[], WebHandler]) -> WebHandler:
    """The handler `make()` builds, built (and its counters bound) at its first request.

    etcd registers v3lock and v3election after giving its gRPC methods their zero-valued
    series, so theirs appear only once called; binding at set-up would expose them early.
    """
    made: WebHandler | None = None

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal made
        if made is None:
            made = make()
        return await made(request)

    return handle


def add_routes(
    app: web.Application, svc: KVService, metrics: GatewayObserver[RpcT, DurationT]
) -> None:
    """Register the lock and election paths under /v3 and /v3beta (after gateway.add_routes,
    whose shutdown hook ends the calls that wait)."""
    max_bytes = svc.max_request_bytes

    def unary(service: str, method: str, handler: Handler) -> WebHandler:
        return make_unary(svc, handler, metrics.rpc(service, method), None, metrics, max_bytes)

    def observe() -> WebHandler:
        return make_observe(svc, metrics.rpc(ELECTION, "Observe", "server_stream"), metrics)

    for prefix in ("/v3", "/v3beta"):
        for path, service, method, handler, waits in UNARY_ROUTES:
            handle = counted_from_first_call(partial(unary, service, method, handler))
            if waits:
                handle = ended_on_shutdown(while_connected(handle))
            app.router.add_post(prefix + path, handle)
        app.router.add_post(
            prefix + "/election/observe",
            ended_on_shutdown(while_connected(counted_from_first_call(observe))),
        )
