"""etcd 3.4's v3lockpb.Lock and v3electionpb.Election over gRPC.

The recipes live in node.server.lock and node.server.election (the gateway's
/v3/lock and /v3/election call the same functions); here they get etcd's messages.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from etcdproto.gen.v3electionpb import v3election_pb2 as epb
from etcdproto.gen.v3lockpb import v3lock_pb2 as lpb
from node.api.grpc import convert
from node.api.grpc.http2 import Method
from node.api.grpc.services import Header
from node.server import election, lock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from node.api.grpc.calls import Calls
    from node.api.grpc.http2 import GrpcStream
    from node.server import KVService

LOCK = "v3lockpb.Lock"
ELECTION = "v3electionpb.Election"


def counted_from_first_call(
    path: bytes, request_type: Any, make: Callable[[], tuple[bytes, Method]]
) -> tuple[bytes, Method]:
    """The method `make()` builds, built (and its counters bound) at its first call.

    etcd registers v3lock and v3election after giving its gRPC methods their zero-valued
    series, so theirs appear only once called (as node.api.gateway_lock does too).
    """
    made: list[Method] = []

    async def handle(stream: GrpcStream) -> None:
        if not made:
            made.append(make()[1])
        await made[0].handler(stream)

    return path, Method(request_type, handle)


def lock_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)

    async def lock_(m: lpb.LockRequest) -> lpb.LockResponse:
        resp = await lock.lock(svc, m.name, m.lease)
        return lpb.LockResponse(header=header(resp.revision), key=resp.key)

    async def unlock(m: lpb.UnlockRequest) -> lpb.UnlockResponse:
        resp = await lock.unlock(svc, m.key)
        return lpb.UnlockResponse(header=header(resp.revision))

    def unary(name: str, request_type: Any, body: Any) -> tuple[bytes, Method]:
        return counted_from_first_call(
            f"/{LOCK}/{name}".encode(),
            request_type,
            lambda: calls.unary(LOCK, name, request_type, body),
        )

    return [unary("Lock", lpb.LockRequest, lock_), unary("Unlock", lpb.UnlockRequest, unlock)]


def _leader_key(m: Any) -> election.LeaderKey | None:
    """The request's leader key; None when unset (etcd: `"leader" field must be provided`)."""
    if not m.HasField("leader"):
        return None
    k = m.leader
    return election.LeaderKey(name=k.name, key=k.key, rev=k.rev, lease=k.lease)


def election_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)

    async def campaign(m: epb.CampaignRequest) -> epb.CampaignResponse:
        resp = await election.campaign(svc, m.name, m.lease, m.value)
        k = resp.leader
        return epb.CampaignResponse(
            header=header(resp.revision),
            leader=epb.LeaderKey(name=k.name, key=k.key, rev=k.rev, lease=k.lease),
        )

    async def proclaim(m: epb.ProclaimRequest) -> epb.ProclaimResponse:
        revision = await election.proclaim(svc, _leader_key(m), m.value)
        return epb.ProclaimResponse(header=header(revision))

    async def leader(m: epb.LeaderRequest) -> epb.LeaderResponse:
        resp = await election.leader(svc, m.name)
        return epb.LeaderResponse(header=header(resp.revision), kv=convert.key_value(resp.kv))

    async def observe(m: epb.LeaderRequest) -> AsyncIterator[epb.LeaderResponse]:
        async with aclosing(election.observe(svc, m.name)) as announcements:
            async for resp in announcements:
                yield epb.LeaderResponse(
                    header=header(resp.revision), kv=convert.key_value(resp.kv)
                )

    async def resign(m: epb.ResignRequest) -> epb.ResignResponse:
        return epb.ResignResponse(header=header(await election.resign(svc, _leader_key(m))))

    def method(
        name: str, request_type: Any, body: Any, stream: bool = False
    ) -> tuple[bytes, Method]:
        build = calls.server_stream if stream else calls.unary
        return counted_from_first_call(
            f"/{ELECTION}/{name}".encode(),
            request_type,
            lambda: build(ELECTION, name, request_type, body),
        )

    return [
        method("Campaign", epb.CampaignRequest, campaign),
        method("Proclaim", epb.ProclaimRequest, proclaim),
        method("Leader", epb.LeaderRequest, leader),
        method("Observe", epb.LeaderRequest, observe, stream=True),
        method("Resign", epb.ResignRequest, resign),
    ]
