"""Error kinds: one vocabulary for every failed request, from etcd's JSON bodies or the socket.

A load run must never stop because the cluster misbehaves: a lost leader, a full
backend or a refused connection is the very thing being measured. So every failure
is mapped to a small, fixed set of kinds that reports, CSV columns and the
`outcome` label of the Prometheus metrics share.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

import aiohttp

SUCCESS: Final = "success"
NO_LEADER: Final = "no_leader"
TIMEOUT: Final = "timeout"
TOO_LARGE: Final = "too_large"
NO_SPACE: Final = "no_space"
CONN_REFUSED: Final = "conn_refused"
CONN_LOST: Final = "conn_lost"
OTHER: Final = "other"

#: Every error kind, in report order. `conn_lost` (an established keep-alive
#: connection reset or closed mid-request) is kept apart from `conn_refused`
#: (nothing listening) because a member dying mid-run shows first as the former.
ERROR_KINDS: Final = (NO_LEADER, TIMEOUT, TOO_LARGE, NO_SPACE, CONN_REFUSED, CONN_LOST, OTHER)
OUTCOMES: Final = (SUCCESS, *ERROR_KINDS)

# Substrings of etcd's error messages (rpctypes in etcd 3.4) -> kind. Checked in order.
_MESSAGE_KINDS: Final = (
    ("no leader", NO_LEADER),
    ("leader changed", NO_LEADER),
    ("not leader", NO_LEADER),
    ("timed out", TIMEOUT),
    ("deadline exceeded", TIMEOUT),
    ("request is too large", TOO_LARGE),
    ("larger than max", TOO_LARGE),
    ("too many operations", TOO_LARGE),
    ("database space exceeded", NO_SPACE),
    ("no space", NO_SPACE),
)


class EtcdError(Exception):
    """A request that did not succeed; `kind` is one of ERROR_KINDS.

    `status` is the HTTP status (0 when no response arrived), `code` the gRPC code
    from etcd's body (0 when absent), `message` etcd's text or the socket error.
    """

    def __init__(self, kind: str, message: str, *, status: int = 0, code: int = 0) -> None:
        super().__init__(f"{kind}: {message} (http={status} code={code})")
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code


def kind_of_message(message: str, *, status: int = 0, code: int = 0) -> str:
    """The kind of an etcd error message; falls back on the gRPC code and HTTP status."""
    lowered = message.lower()
    for needle, kind in _MESSAGE_KINDS:
        if needle in lowered:
            return kind
    if code == 4 or status == 504:  # DeadlineExceeded / gateway timeout
        return TIMEOUT
    if status == 413:
        return TOO_LARGE
    return OTHER


def error_from_body(status: int, body: bytes) -> EtcdError:
    """Build the error for a non-200 answer from etcd's `{"error","message","code"}` body."""
    message = body.decode("utf-8", "replace").strip()
    code = 0
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("error") or message)
        raw_code = parsed.get("code", 0)
        code = raw_code if isinstance(raw_code, int) else 0
    return EtcdError(
        kind_of_message(message, status=status, code=code), message, status=status, code=code
    )


def error_from_stream_error(error: object) -> EtcdError:
    """Build the error for a streamed answer whose line is `{"error": {...}}` (watch, keepalive)."""
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("error") or error)
        raw_code = error.get("code", 0)
        code = raw_code if isinstance(raw_code, int) else 0
        status = int(error.get("http_code", 0) or 0)
        return EtcdError(
            kind_of_message(message, status=status, code=code), message, status=status, code=code
        )
    return EtcdError(kind_of_message(str(error)), str(error))


# gRPC status codes the kinds need (grpc.StatusCode values; errors.py stays free of grpc).
GRPC_DEADLINE_EXCEEDED: Final = 4
GRPC_UNAVAILABLE: Final = 14


def error_from_grpc(code: int, details: str) -> EtcdError:
    """Build the error for a failed gRPC call from its status code and details.

    etcd's rpctypes messages (`etcdserver: no leader`, ...) classify as the gateway's
    bodies do. Unavailable without one of them is the channel's own failure: nothing
    listening (`Connection refused`, `failed to connect`) or a connection that went away.
    """
    message = details or f"gRPC status {code}"
    kind = kind_of_message(message, code=code)
    if kind == OTHER and code == GRPC_UNAVAILABLE:
        lowered = message.lower()
        refused = "refused" in lowered or "failed to connect" in lowered
        kind = CONN_REFUSED if refused else CONN_LOST
    return EtcdError(kind, message, code=code)


def error_from_exception(exc: BaseException) -> EtcdError:
    """Map a client-side exception (timeout, refused, reset) to an EtcdError."""
    if isinstance(exc, EtcdError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return EtcdError(TIMEOUT, "client timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return EtcdError(CONN_REFUSED, str(exc))
        if isinstance(os_error, TimeoutError):
            return EtcdError(TIMEOUT, str(exc))
        return EtcdError(CONN_REFUSED if "refused" in str(exc).lower() else OTHER, str(exc))
    if isinstance(exc, ConnectionRefusedError):
        return EtcdError(CONN_REFUSED, str(exc))
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientOSError
        | aiohttp.ClientPayloadError
        | ConnectionResetError
        | BrokenPipeError,
    ):
        return EtcdError(CONN_LOST, str(exc) or type(exc).__name__)
    return EtcdError(OTHER, f"{type(exc).__name__}: {exc}")
