"""`--protocol grpc`: the workloads' requests over etcd's native API, as `benchmark` sends them.

One `grpc.aio` channel (grpcio's C core: framing, HPACK and protobuf encoding cost
little Python per call) is one of benchmark's `--conns`: one HTTP/2 connection that
multiplexes every client sharing it. A lease's keep-alives go over one
`LeaseKeepAlive` stream per lease and a watcher is one `Watch` stream, as clientv3
does. Failures become `EtcdError`s through `loadgen.errors.error_from_grpc`, so the
gRPC status code and etcd's message land in the same kinds as the gateway's bodies.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc

from etcdproto.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from loadgen.conn import WatchBatch
from loadgen.errors import (
    CONN_LOST,
    OTHER,
    TIMEOUT,
    EtcdError,
    error_from_exception,
    error_from_grpc,
    kind_of_message,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from loadgen.conn import Conn
    from loadgen.keyspace import KeySpace

INT32_MAX = 2**31 - 1
CHANNEL_OPTIONS = (
    # NB: without this, C core shares one TCP connection among every channel to the same
    # target, and --conns would change nothing.
    ("grpc.use_local_subchannel_pool", 1),
    # clientv3's default receive limit (math.MaxInt32); sends stay unlimited so that an
    # oversized request is the server's to refuse, and the run counts its answer.
    ("grpc.max_receive_message_length", INT32_MAX),
)


def grpc_target(endpoint: str) -> tuple[str, bool]:
    """`http://host:port` -> ("host:port", False); https -> ("host:port", True)."""
    url = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    return url.netloc, url.scheme == "https"


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def make_channel(
    endpoint: str, *, cacert: str = "", cert: str = "", key: str = ""
) -> grpc.aio.Channel:
    """A channel of its own (own TCP connection) to `endpoint`; TLS for https URLs."""
    target, secure = grpc_target(endpoint)
    if not secure:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(cacert), private_key=_read(key), certificate_chain=_read(cert)
    )
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


async def unary(call: Awaitable[Any]) -> Any:
    """Await one unary call; every failure becomes an EtcdError of a known kind."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise error_from_grpc(exc.code().value[0], exc.details() or "") from exc
    except EtcdError:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise error_from_exception(exc) from exc


class GrpcConn:
    """One gRPC channel to one endpoint, with the KV, Lease, Watch and Maintenance stubs."""

    def __init__(
        self,
        endpoint: str,
        keys: KeySpace,
        *,
        timeout: float,
        cacert: str = "",
        cert: str = "",
        key: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.keys = keys
        self.timeout = timeout
        self.channel = make_channel(endpoint, cacert=cacert, cert=cert, key=key)
        # The stubs are public for calls the workloads do not make (tests, one-off checks);
        # protoc's grpc stubs carry no annotations: mypy would flag each constructor call.
        stubs: Any = rpc_pb2_grpc
        self.kv_stub = stubs.KVStub(self.channel)
        self.lease_stub = stubs.LeaseStub(self.channel)
        self.watch_stub = stubs.WatchStub(self.channel)
        self.maintenance_stub = stubs.MaintenanceStub(self.channel)
        self._keepalives: dict[int, Any] = {}  # lease ID -> its LeaseKeepAlive stream
        self._fixed: dict[tuple[bytes, bytes | None, bool], rpc_pb2.RangeRequest] = {}

    def _put_request(self, i: int) -> rpc_pb2.PutRequest:
        return rpc_pb2.PutRequest(key=self.keys.key(i), value=self.keys.value)

    async def put(self, i: int) -> None:
        await unary(self.kv_stub.Put(self._put_request(i), timeout=self.timeout))

    async def put_revision(self, i: int) -> int:
        response = await unary(self.kv_stub.Put(self._put_request(i), timeout=self.timeout))
        return int(response.header.revision)

    async def range(self, i: int, *, serializable: bool) -> None:
        request = rpc_pb2.RangeRequest(key=self.keys.key(i), serializable=serializable)
        await unary(self.kv_stub.Range(request, timeout=self.timeout))

    async def fixed_range(self, key: bytes, end: bytes | None, *, serializable: bool) -> None:
        request = self._fixed.get((key, end, serializable))
        if request is None:
            request = self._fixed[key, end, serializable] = rpc_pb2.RangeRequest(
                key=key, range_end=end or b"", serializable=serializable
            )
        await unary(self.kv_stub.Range(request, timeout=self.timeout))

    async def txn_put(self, first: int, ops: int) -> None:
        size = self.keys.size
        request = rpc_pb2.TxnRequest(
            success=[
                rpc_pb2.RequestOp(request_put=self._put_request((first + j) % size))
                for j in range(ops)
            ]
        )
        await unary(self.kv_stub.Txn(request, timeout=self.timeout))

    async def lease_grant(self, ttl: int) -> int:
        request = rpc_pb2.LeaseGrantRequest(TTL=ttl)
        response = await unary(self.lease_stub.LeaseGrant(request, timeout=self.timeout))
        if response.error:
            raise EtcdError(kind_of_message(response.error), response.error)
        return int(response.ID)

    async def lease_keepalive(self, lease_id: int) -> None:
        """One round on the lease's own stream (opened on first use, dropped on failure)."""
        stream = self._keepalives.get(lease_id)
        if stream is None:
            stream = self._keepalives[lease_id] = self.lease_stub.LeaseKeepAlive()
        try:
            async with asyncio.timeout(self.timeout):
                await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                response = await stream.read()
        except TimeoutError:
            self._drop_keepalive(lease_id)
            raise EtcdError(TIMEOUT, "lease keep-alive: no answer in time") from None
        except grpc.aio.AioRpcError as exc:
            self._drop_keepalive(lease_id)
            raise error_from_grpc(exc.code().value[0], exc.details() or "") from exc
        except Exception as exc:
            self._drop_keepalive(lease_id)
            raise error_from_exception(exc) from exc
        if response is grpc.aio.EOF:
            self._drop_keepalive(lease_id)
            raise EtcdError(CONN_LOST, "lease keep-alive stream ended")
        if response.TTL <= 0:
            raise EtcdError(OTHER, "lease not found (keepalive TTL 0)")

    def _drop_keepalive(self, lease_id: int) -> None:
        stream = self._keepalives.pop(lease_id, None)
        if stream is not None:
            stream.cancel()

    async def lease_revoke(self, lease_id: int) -> None:
        self._drop_keepalive(lease_id)
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        await unary(self.lease_stub.LeaseRevoke(request, timeout=self.timeout))

    @asynccontextmanager
    async def watch(self, key: bytes, end: bytes) -> AsyncIterator[AsyncIterator[WatchBatch]]:
        """A Watch stream with one create request; leaving the block cancels the stream."""
        stream = self.watch_stub.Watch()
        try:
            create = rpc_pb2.WatchCreateRequest(key=key, range_end=end)
            try:
                await stream.write(rpc_pb2.WatchRequest(create_request=create))
            except grpc.aio.AioRpcError as exc:
                raise error_from_grpc(exc.code().value[0], exc.details() or "") from exc
            yield _batches(stream)
        finally:
            stream.cancel()

    async def leader_id(self) -> tuple[int, int]:
        request = rpc_pb2.StatusRequest()
        response = await unary(self.maintenance_stub.Status(request, timeout=self.timeout))
        return int(response.header.member_id), int(response.leader)

    async def close(self) -> None:
        for lease_id in list(self._keepalives):
            self._drop_keepalive(lease_id)
        await self.channel.close()


async def _batches(stream: Any) -> AsyncIterator[WatchBatch]:
    """A Watch stream's responses as batches; a canceled watch or a failed stream raises."""
    try:
        async for response in stream:
            if response.canceled:
                reason = response.cancel_reason or "watch canceled"
                raise EtcdError(kind_of_message(reason), reason)
            yield WatchBatch(
                created=response.created,
                revisions=[ev.kv.mod_revision for ev in response.events],
            )
    except grpc.aio.AioRpcError as exc:
        raise error_from_grpc(exc.code().value[0], exc.details() or "") from exc


if TYPE_CHECKING:

    def _conforms(conn: GrpcConn) -> Conn:  # mypy checks GrpcConn against the Protocol
        return conn
