"""etcd's state-machine errors, one exception class each, carrying etcd's exact text.

The text is what an etcd 3.4 client sees through the gateway (`str(err)`), so
`node.api.errors.from_exception` can map any of these by message alone. Each
class also carries the gRPC code etcd uses (`grpc_code`) so callers that do not
want the table lookup can read it off the exception.

Errors raised while *applying* a committed entry are deterministic functions of
the entry and the state before it: every member raises the same one, and the
store reports it in the entry's `ApplyResult` instead of aborting the batch.
"""

from __future__ import annotations

# gRPC codes (google.golang.org/grpc/codes) used below.
_INVALID_ARGUMENT = 3
_NOT_FOUND = 5
_RESOURCE_EXHAUSTED = 8
_FAILED_PRECONDITION = 9
_OUT_OF_RANGE = 11
_UNKNOWN = 2
_INTERNAL = 13
_UNAVAILABLE = 14
_DATA_LOSS = 15


class MvccError(Exception):
    """Base class: an etcd error whose message and code are fixed by its type."""

    message = "etcdserver: unknown error"
    grpc_code = _UNKNOWN

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def __eq__(self, other: object) -> bool:
        # Value semantics make ApplyResults comparable in idempotence tests.
        return type(other) is type(self) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash((type(self), str(self)))


class ErrCompacted(MvccError):
    message = "etcdserver: mvcc: required revision has been compacted"
    grpc_code = _OUT_OF_RANGE


class ErrFutureRev(MvccError):
    message = "etcdserver: mvcc: required revision is a future revision"
    grpc_code = _OUT_OF_RANGE


class ErrKeyNotProvided(MvccError):
    """Empty key in put/range/deleterange (rpctypes.ErrGRPCEmptyKey)."""

    message = "etcdserver: key is not provided"
    grpc_code = _INVALID_ARGUMENT


class ErrKeyNotFound(MvccError):
    """Put with ignore_value/ignore_lease on a key that does not exist."""

    message = "etcdserver: key not found"
    grpc_code = _INVALID_ARGUMENT


class ErrValueProvided(MvccError):
    message = "etcdserver: value is provided"
    grpc_code = _INVALID_ARGUMENT


class ErrLeaseProvided(MvccError):
    message = "etcdserver: lease is provided"
    grpc_code = _INVALID_ARGUMENT


class ErrTooManyOps(MvccError):
    message = "etcdserver: too many operations in txn request"
    grpc_code = _INVALID_ARGUMENT


class ErrDuplicateKey(MvccError):
    message = "etcdserver: duplicate key given in txn request"
    grpc_code = _INVALID_ARGUMENT


class ErrInvalidSortOption(MvccError):
    """A range's sort_target outside the enum (rpctypes.ErrGRPCInvalidSortOption, etcd 3.5).

    etcd 3.4 has no such check and panics applying the request (seen with 3.4.23);
    3.5 refuses it before proposing with this text, and so does raftmon.
    """

    message = "etcdserver: invalid sort option"
    grpc_code = _INVALID_ARGUMENT


class ErrLeaseNotFound(MvccError):
    message = "etcdserver: requested lease not found"
    grpc_code = _NOT_FOUND


class ErrLeaseExists(MvccError):
    message = "etcdserver: lease already exists"
    grpc_code = _FAILED_PRECONDITION


class ErrLeaseTTLTooLarge(MvccError):
    message = "etcdserver: too large lease TTL"
    grpc_code = _OUT_OF_RANGE


class ErrNotLeader(MvccError):
    """Keep-alive on a member whose lessor is not primary (etcd forwards to the leader)."""

    message = "etcdserver: not leader"
    grpc_code = _FAILED_PRECONDITION


class ErrNoSpace(MvccError):
    """A NOSPACE alarm is active (or the quota check failed before proposing)."""

    message = "etcdserver: mvcc: database space exceeded"
    grpc_code = _RESOURCE_EXHAUSTED


class ErrCorrupt(MvccError):
    """A CORRUPT alarm is active: etcd refuses every KV and lease request."""

    message = "etcdserver: corrupt cluster"
    grpc_code = _DATA_LOSS


class ErrUndecodable(MvccError):
    """A committed entry whose data is not an encoded request (never happens between
    members of the same build; reported per entry so the batch still applies)."""

    message = "raftmon: undecodable raft entry"
    grpc_code = _DATA_LOSS


class ErrApplyFailed(MvccError):
    """Applying a committed entry raised something that is not an etcd error: a bug.

    etcd panics here, and the panic repeats on every replay of the entry, which kills
    every member for good. raftmon answers this error for that one request instead,
    with every change the entry made rolled back. The text names only the exception's
    type and message, both functions of the entry and the state before it, so every
    member records the same result.
    """

    message = "raftmon: request could not be applied"
    grpc_code = _INTERNAL


class ErrStoreClosed(MvccError):
    message = "etcdserver: server stopped"
    grpc_code = _UNAVAILABLE


# mvcc.ErrWatcherNotExist / duplicate watch id texts (no "etcdserver: " prefix in
# etcd: they travel as a watch response's cancel_reason, not as a gRPC status).
WATCH_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
