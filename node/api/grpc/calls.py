"""How every gRPC method of a member is called: limits, etcd's errors, etcd's metrics.

A method body is `async (request message) -> reply message` (or, for a server stream,
an async iterator of replies). `unary` and `server_stream` wrap it into a `Method` of
node.api.grpc.http2 with what etcd's interceptors and `togRPCError` add around each call:
- a request above gRPC's limit (--max-request-bytes + 512 KiB) is refused with gRPC's
  own ResourceExhausted text before it is read (node.api.grpc.http2);
- every error value answers with the code and text of `node.api.errors.status`, the
  same table the JSON gateway renders, so `etcdserver: no leader` is Unavailable on
  both front ends;
- the call is counted in grpc_server_started/handled/msg_* and timed into
  etcd_server_request_duration_seconds by the same observer the gateway uses: one
  set of counters per method, whichever front end the call came through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic

from node.api.errors import GrpcCode, status
from node.api.grpc.http2 import GrpcFailure, GrpcStream, Method
from node.api.observer import DurationT, RpcT, unary_call_finished
from node.errors import EtcdError

if TYPE_CHECKING:
    from node.api.observer import GatewayObserver

log = logging.getLogger(__name__)

Unary = Callable[[Any], Awaitable[Any]]
ServerStream = Callable[[Any], AsyncIterator[Any]]


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
            started = time.perf_counter()
            code = GrpcCode.OK
            sent = 0
            try:
                request = await _one_request(stream)
                metrics.request_started(rpc, request.ByteSize())
                reply = await body(request)
                await stream.send_message(reply)
                sent = reply.ByteSize()
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

        async def handle(stream: GrpcStream) -> None:
            metrics.stream_started(rpc)
            started = time.perf_counter()
            code = "OK"
            try:
                request = await _one_request(stream)
                metrics.stream_received(rpc, 1, request.ByteSize())
                async for reply in body(request):
                    await stream.send_message(reply)
                    metrics.stream_sent(rpc, reply.ByteSize())
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

        return _path(service, method), Method(request_type, handle)

    def bidi_stream(
        self,
        service: str,
        method: str,
        request_type: Any,
        body: Callable[[GrpcStream, RpcT], Awaitable[None]],
    ) -> tuple[bytes, Method]:
        """A bidirectional stream (Watch, LeaseKeepAlive); `body` counts its own messages."""
        metrics = self.metrics
        rpc = metrics.rpc(service, method, "bidi_stream")

        async def handle(stream: GrpcStream) -> None:
            metrics.stream_started(rpc)
            started = time.perf_counter()
            code = "OK"
            try:
                await body(stream, rpc)
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

        return _path(service, method), Method(request_type, handle, client_streaming=True)


def _path(service: str, method: str) -> bytes:
    return f"/{service}/{method}".encode()
