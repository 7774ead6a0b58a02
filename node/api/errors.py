"""etcd's client-facing errors: exact wording, gRPC code and the gateway's HTTP status.

Handlers raise `EtcdError`; one middleware renders etcd's body
`{"error": msg, "message": msg, "code": grpc_code}`. The HTTP status follows
grpc-gateway v1 (what etcd 3.4 ships), so clients that branch on status codes
behave the same against raftmon and etcd.
"""

from __future__ import annotations

import enum
import json


class GrpcCode(enum.IntEnum):
    OK = 0
    CANCELED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# grpc-gateway v1 runtime.HTTPStatusFromCode
HTTP_STATUS: dict[GrpcCode, int] = {
    GrpcCode.OK: 200,
    GrpcCode.CANCELED: 408,
    GrpcCode.UNKNOWN: 500,
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.DEADLINE_EXCEEDED: 504,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.ALREADY_EXISTS: 409,
    GrpcCode.PERMISSION_DENIED: 403,
    GrpcCode.RESOURCE_EXHAUSTED: 429,
    GrpcCode.FAILED_PRECONDITION: 412,
    GrpcCode.ABORTED: 409,
    GrpcCode.OUT_OF_RANGE: 400,
    GrpcCode.UNIMPLEMENTED: 501,
    GrpcCode.INTERNAL: 500,
    GrpcCode.UNAVAILABLE: 503,
    GrpcCode.DATA_LOSS: 500,
    GrpcCode.UNAUTHENTICATED: 401,
}


class EtcdError(Exception):
    """An error a client sees, in etcd's words."""

    def __init__(self, message: str, code: GrpcCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> bytes:
        return json.dumps(
            {"error": self.message, "message": self.message, "code": int(self.code)},
            separators=(",", ":"),
        ).encode()


# etcd's messages (server/etcdserver/api/v3rpc/rpctypes, mvcc, lease) and their codes.
NO_LEADER = "etcdserver: no leader"
NOT_LEADER = "etcdserver: not leader"
LEADER_CHANGED = "etcdserver: leader changed"
REQUEST_TIMEOUT = "etcdserver: request timed out"
TIMEOUT_LEADER_FAIL = "etcdserver: request timed out, possibly due to previous leader failure"
TIMEOUT_CONN_LOST = "etcdserver: request timed out, possibly due to connection lost"
REQUEST_TOO_LARGE = "etcdserver: request is too large"
KEY_NOT_PROVIDED = "etcdserver: key is not provided"
TOO_MANY_OPS = "etcdserver: too many operations in txn request"
DUPLICATE_KEY = "etcdserver: duplicate key given in txn request"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"
NO_SPACE = "etcdserver: mvcc: database space exceeded"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
LEASE_EXISTS = "etcdserver: lease already exists"
LEASE_TTL_TOO_LARGE = "etcdserver: too large lease TTL"
MEMBER_NOT_FOUND = "etcdserver: member not found"
BAD_LEADER_TRANSFEREE = "etcdserver: bad leader transferee"
CORRUPT = "etcdserver: corrupt cluster"
UNHEALTHY = "etcdserver: unhealthy cluster"
STOPPED = "etcdserver: server stopped"

CODES: dict[str, GrpcCode] = {
    NO_LEADER: GrpcCode.UNAVAILABLE,
    NOT_LEADER: GrpcCode.FAILED_PRECONDITION,
    LEADER_CHANGED: GrpcCode.UNAVAILABLE,
    REQUEST_TIMEOUT: GrpcCode.UNAVAILABLE,
    TIMEOUT_LEADER_FAIL: GrpcCode.UNAVAILABLE,
    TIMEOUT_CONN_LOST: GrpcCode.UNAVAILABLE,
    REQUEST_TOO_LARGE: GrpcCode.INVALID_ARGUMENT,
    KEY_NOT_PROVIDED: GrpcCode.INVALID_ARGUMENT,
    TOO_MANY_OPS: GrpcCode.INVALID_ARGUMENT,
    DUPLICATE_KEY: GrpcCode.INVALID_ARGUMENT,
    COMPACTED: GrpcCode.OUT_OF_RANGE,
    FUTURE_REV: GrpcCode.OUT_OF_RANGE,
    NO_SPACE: GrpcCode.RESOURCE_EXHAUSTED,
    LEASE_NOT_FOUND: GrpcCode.NOT_FOUND,
    LEASE_EXISTS: GrpcCode.FAILED_PRECONDITION,
    LEASE_TTL_TOO_LARGE: GrpcCode.OUT_OF_RANGE,
    MEMBER_NOT_FOUND: GrpcCode.NOT_FOUND,
    BAD_LEADER_TRANSFEREE: GrpcCode.FAILED_PRECONDITION,
    CORRUPT: GrpcCode.DATA_LOSS,
    UNHEALTHY: GrpcCode.UNAVAILABLE,
    STOPPED: GrpcCode.UNAVAILABLE,
}


def etcd_error(message: str) -> EtcdError:
    """The EtcdError for one of etcd's messages (unknown messages are UNKNOWN, as in gRPC)."""
    return EtcdError(message, CODES.get(message, GrpcCode.UNKNOWN))


def from_exception(err: BaseException) -> EtcdError:
    """Map an error raised below the API (mvcc, lease, server) to what a client sees.

    Lower layers raise exceptions whose text is etcd's message; the code comes
    from the table above, so the wording lives in exactly one place per layer.
    """
    if isinstance(err, EtcdError):
        return err
    code = getattr(err, "grpc_code", None)  # node.mvcc errors carry etcd's code
    if isinstance(code, int):
        return EtcdError(str(err), GrpcCode(code))
    return etcd_error(str(err))


def invalid_argument(message: str) -> EtcdError:
    """Malformed JSON, bad base64, bad field types: gRPC InvalidArgument, HTTP 400."""
    return EtcdError(message, GrpcCode.INVALID_ARGUMENT)


def message_too_large(received: int, limit: int) -> EtcdError:
    """Larger than the gateway's message limit: gRPC's own wording, ResourceExhausted."""
    return EtcdError(
        f"grpc: received message larger than max ({received} vs. {limit})",
        GrpcCode.RESOURCE_EXHAUSTED,
    )


def not_found_path() -> EtcdError:
    return EtcdError("Not Found", GrpcCode.NOT_FOUND)
