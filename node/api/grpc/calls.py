"""How every gRPC method of a member is called: limits, etcd's errors, etcd's metrics.

A method body is `async (request message) -> reply message` (or, for a server stream,
an async iterator of replies). `unary` and `server_stream` wrap it into a `Method` of
node.api.grpc.http2 with what etcd's interceptors and `togRPCError` add around each call:
- a request above gRPC's limit (--max-request-bytes + 512 KiB) is refused with gRPC's
  own ResourceExhausted text before it is read (node.api.grpc.http2);
- every error value answers with the code and text of `node.api.errors.status`, the
  same table the JSON gateway renders, so `etcdserver: no leader` is Unavailable on
  both front ends;
- a call whose metadata asks for a leader (hasleader=true) is refused `no leader` by a
  member that knows none, and such a stream ends when its member loses the leader;
- the call is counted in grpc_server_started/handled/msg_* and timed into
  etcd_server_request_duration_seconds by the same observer the gateway uses: one
  set of counters per method, whichever front end the call came through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic

from node.api.errors import GrpcCode, status
from node.api.grpc.http2 import GrpcFailure, GrpcStream, Method
from node.api.observer import DurationT, RpcT, unary_call_finished
from node.errors import ErrNoLeader, EtcdError

if TYPE_CHECKING:
    from node.api.observer import GatewayObserver

log = logging.getLogger(__name__)

Unary = Callable[[Any], Awaitable[Any]]
ServerStream = Callable[[Any], AsyncIterator[Any]]
REQUIRE_LEADER_KEY, HAS_LEADER = b"hasleader", b"true"  # etcd's rpctypes metadata
NO_LEADER_CHECKS = 3  # etcd's maxNoLeaderCnt


def grpc_error(err: BaseException) -> GrpcFailure:
    """The status a call ends with for `err` (togRPCError's code and etcd's text)."""
    if isinstance(err, GrpcFailure):
        return err
    st = status(err)
    if st.code == GrpcCode.UNKNOWN and not isinstance(err, EtcdError):
        log.error("gRPC call failed", exc_info=err)  # a bug: answered etcd-style, logged loudly
    return GrpcFailure(int(st.code), st.message)


async def _one_request(stream: GrpcStream) -> Any:
    """The request of a call that sends one (a unary or server-streaming call)."""
    request = await stream.recv_message()
    if request is None:
        raise GrpcFailure(int(GrpcCode.INTERNAL), "grpc: the client sent no request message")
    return request


@dataclass(frozen=True, slots=True)
class Calls(Generic[RpcT, DurationT]):
    """What every method of one member's gRPC server shares."""

    metrics: GatewayObserver[RpcT, DurationT]
    # Whether this member knows a leader; None: never refuse (no server behind the calls).
    has_leader: Callable[[], bool] | None = None
    # etcd's monitorLeader looks every election timeout; 3 misses in a row end the streams
    leader_check_seconds: float = 1.0

    def wants_leader(self, stream: GrpcStream) -> bool:
        """The call's metadata says hasleader=true (clientv3's WithRequireLeader; etcdctl
        watch sends it)."""
        return stream.metadata.get(REQUIRE_LEADER_KEY) == HAS_LEADER

    def refuse_without_leader(self, stream: GrpcStream) -> None:
        """etcd's interceptors: a call wanting a leader fails `no leader` while this
        member knows none, before it is counted in grpc_server_* (etcd's metrics sit
        inside)."""
        if self.has_leader is not None and not self.has_leader() and self.wants_leader(stream):
            raise grpc_error(ErrNoLeader())

    async def while_leader_known(self, work: Awaitable[None]) -> None:
        """Run a stream wanting a leader; end it with `no leader` once this member has
        known none for 3 checks in a row (etcd's monitorLeader)."""
        task = asyncio.ensure_future(work)
        misses = 0
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.leader_check_seconds)
                if done:
                    return task.result()
                known = self.has_leader is None or self.has_leader()
                misses = 0 if known else misses + 1
                if misses >= NO_LEADER_CHECKS:
                    raise ErrNoLeader()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def unary(
        self,
        service: str,
        method: str,
        request_type: Any,
        body: Unary,
        timed_as: str | None = None,
    ) -> tuple[bytes, Method]:
        """One unary method: `/service/method` and its `Method`.

        `timed_as` names the request type etcd times in etcd_server_request_duration_seconds
        (Put, Range, ...); calls etcd does not time leave it None.
        """
        metrics = self.metrics
        rpc = metrics.rpc(service, method)
        duration = metrics.request_duration[timed_as] if timed_as else None

        async def handle(stream: GrpcStream) -> None:
            self.refuse_without_leader(stream)
            started = time.perf_counter()
            code = GrpcCode.OK
            sent = 0
            try:
                request = await _one_request(stream)
                metrics.request_started(rpc, request.ByteSize())
                payload = (await body(request)).SerializeToString()
                if not stream.answer(payload):  # the windows or the socket are full: wait
                    await stream.send_payload(payload)
                    stream.finish()
                sent = len(payload)  # the answer has left before its metrics are recorded
            except asyncio.CancelledError:
                code = GrpcCode.CANCELED
                raise
            except Exception as err:
                failure = grpc_error(err)
                code = GrpcCode(failure.code)
                raise failure from None
            finally:
                unary_call_finished(metrics, rpc, duration, code.title, started, sent)

        return _path(service, method), Method(request_type, handle)

    def server_stream(
        self, service: str, method: str, request_type: Any, body: ServerStream
    ) -> tuple[bytes, Method]:
        """One method answering a stream of replies to one request (Snapshot, Observe)."""
        metrics = self.metrics
        rpc = metrics.rpc(service, method, "server_stream")

        async def replies(stream: GrpcStream) -> None:
            request = await _one_request(stream)
            metrics.stream_received(rpc, 1, request.ByteSize())
            async for reply in body(request):
                metrics.stream_sent(rpc, await stream.send_message(reply))

        async def handle(stream: GrpcStream) -> None:
            await self._stream_call(rpc, stream, lambda: replies(stream))

        return _path(service, method), Method(request_type, handle)

    def bidi_stream(
        self,
        service: str,
        method: str,
        request_type: Any,
        body: Callable[[GrpcStream, RpcT], Awaitable[None]],
    ) -> tuple[bytes, Method]:
        """A bidirectional stream (Watch, LeaseKeepAlive); `body` counts its own messages."""
        rpc = self.metrics.rpc(service, method, "bidi_stream")

        async def handle(stream: GrpcStream) -> None:
            def work() -> Awaitable[None]:
                if self.wants_leader(stream):
                    return self.while_leader_known(body(stream, rpc))
                return body(stream, rpc)

            await self._stream_call(rpc, stream, work)

        return _path(service, method), Method(request_type, handle, client_streaming=True)

    async def _stream_call(
        self, rpc: RpcT, stream: GrpcStream, work: Callable[[], Awaitable[None]]
    ) -> None:
        """A streaming call's life as go-grpc-prometheus counts it: started, ended by code."""
        metrics = self.metrics
        self.refuse_without_leader(stream)
        metrics.stream_started(rpc)
        started = time.perf_counter()
        code = "OK"
        try:
            await work()
        except asyncio.CancelledError:
            code = "Canceled"
            raise
        except Exception as err:
            failure = grpc_error(err)
            code = GrpcCode(failure.code).title
            raise failure from None
        finally:
            metrics.stream_finished(rpc, code)
            if rpc.timed:
                metrics.call_handled(rpc, time.perf_counter() - started)


def _path(service: str, method: str) -> bytes:
    return f"/{service}/{method}".encode()
