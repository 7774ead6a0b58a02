"""The JSON gateway's events, as a typed seam: who listens is the member's business.

The gateway counts every call the way etcd's gRPC interceptors do (started,
messages in and out, handled by code, duration by request type) through a
`GatewayObserver`. exporter's `MemberMetrics` satisfies it structurally (the api
never imports the exporter); `NullGatewayObserver` is the default that counts
nothing, for a gateway built without metrics.

The per-method counters (`RpcT`) and per-type duration handles (`DurationT`) are
bound once at route set-up and handed back on every event, so the hot path does
no lookup; the gateway only reads and bumps the few fields `RpcCounters` names.

With etcd's --metrics=extensive every finished call is also timed into
grpc_server_handling_seconds through `call_handled`; the front ends call it only when
the method's `timed` flag is set, so a member with basic metrics pays one attribute
check per call and reads no extra clock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping


class RpcCounters(Protocol):
    """One gRPC method's counters, as the gateway bumps them for calls etcd does not time."""

    handled_ok: int
    msg_sent: int
    timed: bool  # finished calls go to call_handled (--metrics=extensive)

    def count_handled(self, code: str) -> None: ...


RpcT = TypeVar("RpcT", bound=RpcCounters)
DurationT = TypeVar("DurationT")


class GatewayObserver(Protocol[RpcT, DurationT]):
    """What the gateway reports: unary calls, stream lifecycles, bytes both ways."""

    @property
    def request_duration(self) -> Mapping[str, DurationT]:
        """The duration handle of each etcd request type (`Put`, `Range`, ...)."""
        ...

    def rpc(self, service: str, method: str, grpc_type: str = "unary") -> RpcT:
        """The counters of one method, bound once at route set-up."""
        ...

    def request_started(self, rpc: RpcT, received_bytes: int) -> None: ...

    def request_finished(
        self, rpc: RpcT, duration: DurationT, code: str, seconds: float, sent_bytes: int
    ) -> None: ...

    def stream_started(self, rpc: RpcT, api_version: str = "unknown") -> None: ...

    def stream_received(self, rpc: RpcT, messages: int, nbytes: int) -> None: ...

    def stream_sent(self, rpc: RpcT, nbytes: int) -> None: ...

    def stream_finished(self, rpc: RpcT, code: str) -> None: ...

    def call_handled(self, rpc: RpcT, seconds: float) -> None:
        """A call ended `seconds` after it started (unary: answered; stream: closed).

        Only for an `rpc` whose `timed` is set; any code, any call type.
        """
        ...


class NullRpc:
    """Counters nobody reads."""

    __slots__ = ("handled_ok", "msg_sent", "timed")

    def __init__(self) -> None:
        self.handled_ok = 0
        self.msg_sent = 0
        self.timed = False

    def count_handled(self, code: str) -> None:
        pass


class _NoDurations(dict[str, None]):
    """No duration handle, whatever the request type."""

    def __missing__(self, kind: str) -> None:
        return None


class NullGatewayObserver:
    """The observer that counts nothing."""

    def __init__(self) -> None:
        self._rpc = NullRpc()
        self._durations = _NoDurations()

    @property
    def request_duration(self) -> Mapping[str, None]:
        return self._durations

    def rpc(self, service: str, method: str, grpc_type: str = "unary") -> NullRpc:
        return self._rpc

    def request_started(self, rpc: NullRpc, received_bytes: int) -> None:
        pass

    def request_finished(
        self, rpc: NullRpc, duration: None, code: str, seconds: float, sent_bytes: int
    ) -> None:
        pass

    def stream_started(self, rpc: NullRpc, api_version: str = "unknown") -> None:
        pass

    def stream_received(self, rpc: NullRpc, messages: int, nbytes: int) -> None:
        pass

    def stream_sent(self, rpc: NullRpc, nbytes: int) -> None:
        pass

    def stream_finished(self, rpc: NullRpc, code: str) -> None:
        pass

    def call_handled(self, rpc: NullRpc, seconds: float) -> None:
        pass


if TYPE_CHECKING:
    _: GatewayObserver[NullRpc, None] = NullGatewayObserver()


def unary_call_finished(
    metrics: GatewayObserver[RpcT, DurationT],
    rpc: RpcT,
    duration: DurationT | None,
    code: str,
    started: float,
    sent_bytes: int,
) -> None:
    """Count a unary call that ended with gRPC `code`, the same way on every front end.

    Calls etcd times (`duration` given) go through `request_finished`; the others (Status,
    MemberList, ...) count as handled, and an OK one as one message sent. Under
    --metrics=extensive every call also feeds grpc_server_handling_seconds.
    `started` is the call's `time.perf_counter()` at arrival.
    """
    seconds = time.perf_counter() - started
    if duration is not None:
        metrics.request_finished(rpc, duration, code, seconds, sent_bytes)
    elif code == "OK":
        rpc.handled_ok += 1
        rpc.msg_sent += 1
    else:
        rpc.count_handled(code)
    if rpc.timed:
        metrics.call_handled(rpc, seconds)
