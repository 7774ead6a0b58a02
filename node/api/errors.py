"""Each of etcd's error values (node/errors.py) on the wire: gRPC code, HTTP status, body.

The one table of codes, as etcd's api/v3rpc/util.go `togRPCError` is its one: the
JSON gateway renders `Status.body()` with `Status.http_status`, and a gRPC front end
answers `Status.code` with the same text. The HTTP status follows grpc-gateway v1
(what etcd 3.4 ships), so clients that branch on status codes behave the same
against raftmon and etcd.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from node import errors as E


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

    @property
    def title(self) -> str:
        """The code's name as go-grpc-prometheus labels it (`InvalidArgument`)."""
        if self is GrpcCode.OK:
            return "OK"
        return "".join(part.capitalize() for part in self.name.split("_"))


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

# togRPCError: each error value's gRPC code. A class missing here answers as its
# nearest base listed (ErrStoreClosed as ErrStopped); an error no class names
# (the EtcdError base) is Unknown, as gRPC calls any error without a status.
CODES: dict[type[E.EtcdError], GrpcCode] = {
    E.ErrNoLeader: GrpcCode.UNAVAILABLE,
    E.ErrLeaderChanged: GrpcCode.UNAVAILABLE,
    E.ErrTimeout: GrpcCode.UNAVAILABLE,
    E.ErrTimeoutDueToLeaderFail: GrpcCode.UNAVAILABLE,
    E.ErrTimeoutDueToConnectionLost: GrpcCode.UNAVAILABLE,
    E.ErrRequestTooLarge: GrpcCode.INVALID_ARGUMENT,
    E.ErrMemberNotFound: GrpcCode.NOT_FOUND,
    E.ErrBadLeaderTransferee: GrpcCode.FAILED_PRECONDITION,
    E.ErrUnhealthy: GrpcCode.UNAVAILABLE,
    E.ErrMemberExist: GrpcCode.FAILED_PRECONDITION,
    E.ErrPeerURLExist: GrpcCode.FAILED_PRECONDITION,
    E.ErrMemberNotEnoughStarted: GrpcCode.FAILED_PRECONDITION,
    E.ErrMemberBadURLs: GrpcCode.INVALID_ARGUMENT,
    E.ErrMemberNotLearner: GrpcCode.FAILED_PRECONDITION,
    E.ErrLearnerNotReady: GrpcCode.FAILED_PRECONDITION,
    E.ErrTooManyLearners: GrpcCode.FAILED_PRECONDITION,
    E.ErrNotSupportedForLearner: GrpcCode.FAILED_PRECONDITION,
    E.ErrStopped: GrpcCode.UNAVAILABLE,
    E.ErrInvalidRequest: GrpcCode.INVALID_ARGUMENT,
    E.ErrMessageTooLarge: GrpcCode.RESOURCE_EXHAUSTED,
    E.ErrUnimplemented: GrpcCode.UNIMPLEMENTED,
    E.ErrCompacted: GrpcCode.OUT_OF_RANGE,
    E.ErrFutureRev: GrpcCode.OUT_OF_RANGE,
    E.ErrKeyNotProvided: GrpcCode.INVALID_ARGUMENT,
    E.ErrKeyNotFound: GrpcCode.INVALID_ARGUMENT,
    E.ErrValueProvided: GrpcCode.INVALID_ARGUMENT,
    E.ErrLeaseProvided: GrpcCode.INVALID_ARGUMENT,
    E.ErrTooManyOps: GrpcCode.INVALID_ARGUMENT,
    E.ErrDuplicateKey: GrpcCode.INVALID_ARGUMENT,
    E.ErrInvalidSortOption: GrpcCode.INVALID_ARGUMENT,
    E.ErrLeaseNotFound: GrpcCode.NOT_FOUND,
    E.ErrLeaseExists: GrpcCode.FAILED_PRECONDITION,
    E.ErrLeaseTTLTooLarge: GrpcCode.OUT_OF_RANGE,
    E.ErrNotLeader: GrpcCode.FAILED_PRECONDITION,
    E.ErrNoSpace: GrpcCode.RESOURCE_EXHAUSTED,
    E.ErrCorrupt: GrpcCode.DATA_LOSS,
    E.ErrUndecodable: GrpcCode.DATA_LOSS,
    E.ErrApplyFailed: GrpcCode.INTERNAL,
    # Unavailable, not DataLoss: the data is intact on the other members, and
    # etcd's clients retry an unavailable call elsewhere.
    E.ErrBackendDamaged: GrpcCode.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Status:
    """An error as a front end answers it: gRPC code and etcd's text."""

    code: GrpcCode
    message: str

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> bytes:
        """etcd's gateway body: `{"error": msg, "message": msg, "code": grpc_code}`."""
        return json.dumps(
            {"error": self.message, "message": self.message, "code": int(self.code)},
            separators=(",", ":"),
        ).encode()


def status(err: BaseException) -> Status:
    """The wire form of any exception a handler lets escape (togRPCError)."""
    value = E.from_exception(err)
    for cls in type(value).__mro__:
        code = CODES.get(cls)
        if code is not None:
            return Status(code, value.message)
    return Status(GrpcCode.UNKNOWN, value.message)


# The gateway's own answer for a path under /v3/ it does not serve.
NOT_FOUND_PATH = Status(GrpcCode.NOT_FOUND, "Not Found")
