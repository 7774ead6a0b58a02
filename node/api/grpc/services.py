"""etcd 3.4's gRPC services on one member: KV, Lease, Watch, Maintenance, Cluster.

Each method converts etcd's message to the KV service's request, calls the same
`KVService` method the JSON gateway calls, and converts the answer back; nothing
here decides anything the gateway would decide differently.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from node.api.grpc import convert
from node.errors import ErrUnimplemented, EtcdError
from node.mvcc import requests as rq
from node.server.proposals import GRPC_OVERHEAD_BYTES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from node.api.grpc.calls import Calls
    from node.api.grpc.http2 import GrpcStream, Method
    from node.api.observer import GatewayObserver, RpcT
    from node.server import KVService, WatchBridge
    from node.server.kv_service import MemberInfo

KV = "etcdserverpb.KV"
LEASE = "etcdserverpb.Lease"
WATCH = "etcdserverpb.Watch"
MAINTENANCE = "etcdserverpb.Maintenance"
CLUSTER = "etcdserverpb.Cluster"

ENCODE_SLICE = 500  # key-values converted per turn of the client share, as the gateway does
STREAM_BATCH = 64  # stream messages handled per turn of the client share


class Header:
    """The ResponseHeader of a member's answers (etcd's fills all four fields)."""

    def __init__(self, svc: KVService) -> None:
        self._svc = svc
        self._cluster_id = svc.server.cluster_id
        self._member_id = svc.server.member_id

    def __call__(self, revision: int = 0) -> pb.ResponseHeader:
        svc = self._svc
        return pb.ResponseHeader(
            cluster_id=self._cluster_id,
            member_id=self._member_id,
            revision=revision or svc.kv.current_revision(),
            raft_term=svc.server.term,
        )


def kv_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)

    async def put(m: pb.PutRequest) -> pb.PutResponse:
        resp = await svc.put(convert.put_request(m))
        return convert.put_response(resp, header(resp.revision))

    async def range_(m: pb.RangeRequest) -> pb.RangeResponse:
        resp = await svc.range(convert.range_request(m))
        if len(resp.kvs) <= ENCODE_SLICE:
            return convert.range_response(resp, header(resp.revision))
        # A 100k-key answer converted at once holds the loop for a good part of a second.
        kvs, resp.kvs = resp.kvs, []
        out = convert.range_response(resp, header(resp.revision))
        for i in range(0, len(kvs), ENCODE_SLICE):
            await svc.client_share.turn()
            out.kvs.extend(convert.key_values(kvs[i : i + ENCODE_SLICE]))
        return out

    async def delete_range(m: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        resp = await svc.delete_range(convert.delete_range_request(m))
        return convert.delete_range_response(resp, header(resp.revision))

    async def txn(m: pb.TxnRequest) -> pb.TxnResponse:
        resp = await svc.txn(convert.txn_request(m))
        return convert.txn_response(resp, header(resp.revision))

    async def compact(m: pb.CompactionRequest) -> pb.CompactionResponse:
        resp = await svc.compact(convert.compaction_request(m))
        return pb.CompactionResponse(header=header(resp.revision))

    return [
        calls.unary(KV, "Range", pb.RangeRequest, range_, "Range"),
        calls.unary(KV, "Put", pb.PutRequest, put, "Put"),
        calls.unary(
            KV,
            "DeleteRange",
            pb.DeleteRangeRequest,
            delete_range,
            "DeleteRange",
        ),
        calls.unary(KV, "Txn", pb.TxnRequest, txn, "Txn"),
        calls.unary(KV, "Compact", pb.CompactionRequest, compact, "Compaction"),
    ]


def lease_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)

    async def grant(m: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        resp = await svc.lease_grant(rq.LeaseGrantRequest(ttl=m.TTL, id=m.ID))
        return pb.LeaseGrantResponse(
            header=header(resp.revision), ID=resp.id, TTL=resp.ttl, error=resp.error
        )

    async def revoke(m: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        resp = await svc.lease_revoke(rq.LeaseRevokeRequest(id=m.ID))
        return pb.LeaseRevokeResponse(header=header(resp.revision))

    async def time_to_live(m: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        resp = await svc.lease_time_to_live(rq.LeaseTimeToLiveRequest(id=m.ID, keys=m.keys))
        return pb.LeaseTimeToLiveResponse(
            header=header(resp.revision),
            ID=resp.id,
            TTL=resp.ttl,
            grantedTTL=resp.granted_ttl,
            keys=resp.keys,
        )

    async def leases(m: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        resp = await svc.lease_leases()
        return pb.LeaseLeasesResponse(
            header=header(resp.revision), leases=[pb.LeaseStatus(ID=i) for i in resp.leases]
        )

    async def keep_alive(stream: GrpcStream, rpc: Any) -> None:
        """Each LeaseKeepAliveRequest answered in order; the stream ends when the client's does."""
        metrics = calls.metrics
        handled = 0
        async for m in stream:
            metrics.stream_received(rpc, 1, m.ByteSize())
            if handled % STREAM_BATCH == 0:
                await svc.client_share.turn()  # a flood is served a slice per loop turn
            handled += 1
            resp = await svc.lease_keepalive(rq.LeaseKeepAliveRequest(id=m.ID))
            reply = pb.LeaseKeepAliveResponse(
                header=header(resp.revision), ID=resp.id, TTL=resp.ttl
            )
            metrics.stream_sent(rpc, await stream.send_message(reply))

    return [
        calls.unary(LEASE, "LeaseGrant", pb.LeaseGrantRequest, grant, "LeaseGrant"),
        calls.unary(
            LEASE,
            "LeaseRevoke",
            pb.LeaseRevokeRequest,
            revoke,
            "LeaseRevoke",
        ),
        calls.unary(
            LEASE,
            "LeaseTimeToLive",
            pb.LeaseTimeToLiveRequest,
            time_to_live,
            "LeaseTimeToLive",
        ),
        calls.unary(
            LEASE,
            "LeaseLeases",
            pb.LeaseLeasesRequest,
            leases,
            "LeaseLeases",
        ),
        calls.bidi_stream(
            LEASE,
            "LeaseKeepAlive",
            pb.LeaseKeepAliveRequest,
            keep_alive,
        ),
    ]


def watch_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)
    # etcd's watch server splits at its gRPC limit: --max-request-bytes + gRPC's overhead
    fragment_limit = svc.max_request_bytes + GRPC_OVERHEAD_BYTES

    async def watch(stream: GrpcStream, rpc: Any) -> None:
        """Creates, cancels and progress requests in; the bridge's answers out, in order.

        The stream lives until the client ends its side and every watcher is gone, or
        the client goes away (etcd keeps sending while the client's side is closed).
        """
        bridge = svc.open_watch_stream()
        fragmented: set[int] = set()  # watchers created with fragment=true
        reader = asyncio.create_task(
            _watch_requests(stream, bridge, rpc, calls.metrics, fragmented)
        )
        try:
            sent = 0
            async for result in bridge.results():
                if sent % STREAM_BATCH == 0:
                    await svc.client_share.turn()
                reply = convert.watch_response(result, header(result.revision))
                if not result.revision:  # a compacted watcher's cancel: etcd's header has none
                    reply.header.ClearField("revision")
                replies = [reply]
                if result.watch_id in fragmented:
                    replies = watch_fragments(reply, fragment_limit)
                for part in replies:
                    calls.metrics.stream_sent(rpc, await stream.send_message(part))
                sent += 1
        finally:
            bridge.close()
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    return [calls.bidi_stream(WATCH, "Watch", pb.WatchRequest, watch)]


async def _watch_requests(
    stream: GrpcStream,
    bridge: WatchBridge,
    rpc: RpcT,
    metrics: GatewayObserver[RpcT, Any],
    fragmented: set[int],
) -> None:
    """Apply the client's watch requests as they arrive, until its side of the stream ends.

    `fragmented` learns the id of each watcher created with fragment=true (and forgets
    an id a later watcher reuses without it).
    """
    try:
        async for m in stream:
            metrics.stream_received(rpc, 1, m.ByteSize())
            member = m.WhichOneof("request_union")
            if member == "create_request":
                created = bridge.create(convert.watch_create_request(m.create_request))
                if m.create_request.fragment and not created.canceled:
                    fragmented.add(created.watch_id)
                elif not created.canceled:
                    fragmented.discard(created.watch_id)
            elif member == "cancel_request":
                bridge.cancel(m.cancel_request.watch_id)
            elif member == "progress_request":
                bridge.progress()
    except EtcdError:
        bridge.close()  # a message over the limit ends the whole stream, as gRPC's does
        raise


def watch_fragments(reply: pb.WatchResponse, limit: int) -> list[pb.WatchResponse]:
    """etcd's fragmenting of one watch response at `limit` bytes (fragment=true asked).

    A response under the limit, or with one event, goes whole. Otherwise each part
    takes events while it stays under the limit (at least one), measured with its
    fragment flag set; every part but the last says fragment=true.
    """
    events = list(reply.events)
    if len(events) < 2 or reply.ByteSize() < limit:
        return [reply]
    shell = pb.WatchResponse()
    shell.CopyFrom(reply)
    del shell.events[:]
    shell.fragment = True
    base = shell.ByteSize()
    parts: list[pb.WatchResponse] = []
    i = 0
    while i < len(events):
        size, end = base, i
        while end < len(events):
            size += _field_size(events[end].ByteSize())
            if end > i and size >= limit:
                break
            end += 1
        part = pb.WatchResponse()
        part.CopyFrom(shell)
        part.events.extend(events[i:end])
        part.fragment = end < len(events)
        parts.append(part)
        i = end
    return parts


def _field_size(n: int) -> int:
    """Bytes a length-delimited field of n bytes takes in a message (1-byte tag)."""
    return 1 + max(1, (n.bit_length() + 6) // 7) + n


def maintenance_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)

    async def alarm(m: pb.AlarmRequest) -> pb.AlarmResponse:
        resp = await svc.alarm(
            rq.AlarmRequest(action=m.action, member_id=m.memberID, alarm=m.alarm)
        )
        # etcd 3.4's Alarm, Defragment and MoveLeader answer with no header at all
        return pb.AlarmResponse(
            alarms=[
                pb.AlarmMember(memberID=a.member_id, alarm=rq.AlarmType(a.alarm).name)
                for a in resp.alarms
            ],
        )

    async def status(m: pb.StatusRequest) -> pb.StatusResponse:
        st = await svc.status()
        return pb.StatusResponse(
            header=header(st.revision),
            version=st.version,
            dbSize=st.db_size,
            leader=st.leader,
            raftIndex=st.raft_index,
            raftTerm=st.raft_term,
            raftAppliedIndex=st.raft_applied_index,
            errors=st.errors,
            dbSizeInUse=st.db_size_in_use,
        )

    async def defragment(m: pb.DefragmentRequest) -> pb.DefragmentResponse:
        await svc.defragment()
        return pb.DefragmentResponse()

    async def move_leader(m: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse:
        await svc.transfer_leadership(m.targetID)
        return pb.MoveLeaderResponse()

    async def hash_(m: pb.HashRequest) -> pb.HashResponse:
        resp = await svc.hash()
        return pb.HashResponse(header=header(resp.revision), hash=resp.hash)

    async def hash_kv(m: pb.HashKVRequest) -> pb.HashKVResponse:
        resp = await svc.hash_kv(m.revision)
        return pb.HashKVResponse(
            header=header(resp.revision), hash=resp.hash, compact_revision=resp.compact_revision
        )

    async def snapshot(m: pb.SnapshotRequest) -> AsyncIterator[pb.SnapshotResponse]:
        async for chunk in svc.snapshot():  # no header, as etcd 3.4 sends none
            yield pb.SnapshotResponse(remaining_bytes=chunk.remaining_bytes, blob=chunk.blob)

    return [
        calls.server_stream(MAINTENANCE, "Snapshot", pb.SnapshotRequest, snapshot),
        calls.unary(MAINTENANCE, "Hash", pb.HashRequest, hash_),
        calls.unary(MAINTENANCE, "HashKV", pb.HashKVRequest, hash_kv),
        calls.unary(MAINTENANCE, "Alarm", pb.AlarmRequest, alarm, "Alarm"),
        calls.unary(MAINTENANCE, "Status", pb.StatusRequest, status),
        calls.unary(MAINTENANCE, "Defragment", pb.DefragmentRequest, defragment),
        calls.unary(MAINTENANCE, "MoveLeader", pb.MoveLeaderRequest, move_leader),
    ]


def cluster_methods(svc: KVService, calls: Calls[Any, Any]) -> list[tuple[bytes, Method]]:
    header = Header(svc)

    def head() -> pb.ResponseHeader:
        h = header()
        h.ClearField("revision")  # etcd's cluster calls answer a header without a revision
        return h

    def member(i: MemberInfo) -> pb.Member:
        return pb.Member(
            ID=i.id,
            name=i.name,
            peerURLs=i.peer_urls,
            clientURLs=i.client_urls,
            isLearner=i.is_learner,
        )

    async def members() -> list[pb.Member]:
        return [member(i) for i in await svc.member_list()]

    async def member_list(m: pb.MemberListRequest) -> pb.MemberListResponse:
        return pb.MemberListResponse(header=head(), members=await members())

    async def member_add(m: pb.MemberAddRequest) -> pb.MemberAddResponse:
        added = await svc.member_add(list(m.peerURLs), m.isLearner)
        return pb.MemberAddResponse(header=head(), member=member(added), members=await members())

    async def member_remove(m: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse:
        await svc.member_remove(m.ID)
        return pb.MemberRemoveResponse(header=head(), members=await members())

    async def member_update(m: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse:
        await svc.member_update(m.ID, list(m.peerURLs))
        return pb.MemberUpdateResponse(header=head(), members=await members())

    async def member_promote(m: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        await svc.member_promote(m.ID)
        return pb.MemberPromoteResponse(header=head(), members=await members())

    return [
        calls.unary(CLUSTER, "MemberAdd", pb.MemberAddRequest, member_add),
        calls.unary(CLUSTER, "MemberRemove", pb.MemberRemoveRequest, member_remove),
        calls.unary(CLUSTER, "MemberUpdate", pb.MemberUpdateRequest, member_update),
        calls.unary(CLUSTER, "MemberList", pb.MemberListRequest, member_list),
        calls.unary(CLUSTER, "MemberPromote", pb.MemberPromoteRequest, member_promote),
    ]


def unimplemented_methods(
    served: dict[bytes, Method], calls: Calls[Any, Any]
) -> list[tuple[bytes, Method]]:
    """Every other method etcd 3.4 declares, answering Unimplemented with its name.

    An unknown path is Unimplemented too (node.api.grpc.http2); a method etcd declares
    and raftmon does not serve says so plainly, so the operator knows it is raftmon's gap.
    """
    out = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}".encode()
            if path in served:
                continue
            request = _message_class(method.input_type.full_name)
            name = f"{service.full_name}.{method.name}"

            async def refuse(m: Any, name: str = name) -> Any:
                raise ErrUnimplemented(f"raftmon: {name} is not implemented")

            if method.server_streaming or method.client_streaming:
                continue  # etcd 3.4's streaming methods are all served above
            out.append(calls.unary(service.full_name, method.name, request, refuse))
    return out


def _message_class(full_name: str) -> Any:
    return getattr(pb, full_name.rpartition(".")[2])


ALL = (kv_methods, lease_methods, watch_methods, maintenance_methods, cluster_methods)
