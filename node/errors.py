"""etcd's error values, one exception class each, carrying etcd's exact text.

Every layer raises these; none of them knows a wire code. Each front end maps them
to its own codes in one table (node/api/errors.py for the JSON gateway, as etcd's
api/v3rpc/util.go `togRPCError` maps etcd's errors to gRPC statuses), so the
meaning of an error lives here and its spelling on the wire lives there.

The text is what an etcd 3.4 client sees (`str(err)`), so an error read back from
another member's answer is recovered by its message alone (`etcd_error`), as
etcd's client-side rpctypes recovers its typed errors.

Errors raised while *applying* a committed entry (`MvccError`) are deterministic
functions of the entry and the state before it: every member raises the same one,
and the store reports it in the entry's `ApplyResult` instead of aborting the batch.
"""

from __future__ import annotations


class EtcdError(Exception):
    """An error a client sees, in etcd's words; its class says which error it is.

    The base class itself stands for an error this member cannot name (gRPC's
    Unknown): `etcd_error` answers it for text that matches no class below.
    """

    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message  # the classes whose text varies
        super().__init__(self.message)

    def __eq__(self, other: object) -> bool:
        # Value semantics make ApplyResults comparable in idempotence tests.
        return type(other) is type(self) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash((type(self), str(self)))


# ---- the server: leadership, time, size, membership (etcdserver/errors.go) -----------


class ErrNoLeader(EtcdError):
    message = "etcdserver: no leader"


class ErrLeaderChanged(EtcdError):
    message = "etcdserver: leader changed"


class ErrTimeout(EtcdError):
    message = "etcdserver: request timed out"


class ErrTimeoutDueToLeaderFail(EtcdError):
    """A leader was elected while the request waited: the previous one is blamed."""

    message = "etcdserver: request timed out, possibly due to previous leader failure"


class ErrTimeoutDueToConnectionLost(EtcdError):
    message = "etcdserver: request timed out, possibly due to connection lost"


class ErrRequestTooLarge(EtcdError):
    """Above --max-request-bytes, within gRPC's message limit."""

    message = "etcdserver: request is too large"


class ErrMemberNotFound(EtcdError):
    message = "etcdserver: member not found"


class ErrBadLeaderTransferee(EtcdError):
    message = "etcdserver: bad leader transferee"


class ErrUnhealthy(EtcdError):
    message = "etcdserver: unhealthy cluster"


class ErrMemberExist(EtcdError):
    message = "etcdserver: member ID already exist"


class ErrPeerURLExist(EtcdError):
    message = "etcdserver: Peer URLs already exists"


class ErrMemberNotEnoughStarted(EtcdError):
    """--strict-reconfig-check: the change would leave too few started voters for a quorum."""

    message = "etcdserver: re-configuration failed due to not enough started members"


class ErrMemberBadURLs(EtcdError):
    message = "etcdserver: given member URLs are invalid"


class ErrMemberNotLearner(EtcdError):
    message = "etcdserver: can only promote a learner member"


class ErrLearnerNotReady(EtcdError):
    message = "etcdserver: can only promote a learner member which is in sync with leader"


class ErrTooManyLearners(EtcdError):
    message = "etcdserver: too many learner members in cluster"


class ErrNotSupportedForLearner(EtcdError):
    message = "etcdserver: rpc not supported for learner"


class ErrStopped(EtcdError):
    message = "etcdserver: server stopped"


# ---- the request itself: malformed, too large for the transport, not served ----------


class ErrInvalidRequest(EtcdError):
    """A request that does not decode: the text says why, in Go's words (json, base64).

    gRPC answers these itself (InvalidArgument) before etcd's server sees them.
    """

    message = "raftmon: invalid request"


class ErrMessageTooLarge(EtcdError):
    """A message above gRPC's limit (--max-request-bytes + 512 KiB), in gRPC's words."""

    message = "grpc: received message larger than max"

    def __init__(self, received: int, limit: int) -> None:
        super().__init__(f"{self.message} ({received} vs. {limit})")


class ErrUnimplemented(EtcdError):
    """A call etcd serves and raftmon does not; the text names it."""

    message = "raftmon: not implemented"


# ---- the state machine: mvcc, lease, alarms (deterministic when applying) -----------


class MvccError(EtcdError):
    """An error of the state machine, whose message is fixed by its type."""


class ErrCompacted(MvccError):
    message = "etcdserver: mvcc: required revision has been compacted"


class ErrFutureRev(MvccError):
    message = "etcdserver: mvcc: required revision is a future revision"


class ErrKeyNotProvided(MvccError):
    """Empty key in put/range/deleterange (rpctypes.ErrGRPCEmptyKey)."""

    message = "etcdserver: key is not provided"


class ErrKeyNotFound(MvccError):
    """Put with ignore_value/ignore_lease on a key that does not exist."""

    message = "etcdserver: key not found"


class ErrValueProvided(MvccError):
    message = "etcdserver: value is provided"


class ErrLeaseProvided(MvccError):
    message = "etcdserver: lease is provided"


class ErrTooManyOps(MvccError):
    message = "etcdserver: too many operations in txn request"


class ErrDuplicateKey(MvccError):
    message = "etcdserver: duplicate key given in txn request"


class ErrInvalidSortOption(MvccError):
    """A range's sort_target outside the enum (rpctypes.ErrGRPCInvalidSortOption, etcd 3.5).

    etcd 3.4 has no such check and panics applying the request (seen with 3.4.23);
    3.5 refuses it before proposing with this text, and so does raftmon.
    """

    message = "etcdserver: invalid sort option"


class ErrLeaseNotFound(MvccError):
    message = "etcdserver: requested lease not found"


class ErrLeaseExists(MvccError):
    message = "etcdserver: lease already exists"


class ErrLeaseTTLTooLarge(MvccError):
    message = "etcdserver: too large lease TTL"


class ErrNotLeader(MvccError):
    """Keep-alive on a member whose lessor is not primary (etcd forwards to the leader)."""

    message = "etcdserver: not leader"


class ErrNoSpace(MvccError):
    """A NOSPACE alarm is active (or the quota check failed before proposing)."""

    message = "etcdserver: mvcc: database space exceeded"


class ErrCorrupt(MvccError):
    """A CORRUPT alarm is active: etcd refuses every KV and lease request."""

    message = "etcdserver: corrupt cluster"


class ErrUndecodable(MvccError):
    """A committed entry whose data is not an encoded request (never happens between
    members of the same build; reported per entry so the batch still applies)."""

    message = "raftmon: undecodable raft entry"


class ErrApplyFailed(MvccError):
    """Applying a committed entry raised something that is not an etcd error: a bug.

    etcd panics here, and the panic repeats on every replay of the entry, which kills
    every member for good. raftmon answers this error for that one request instead,
    with every change the entry made rolled back. The text names only the exception's
    type and message, both functions of the entry and the state before it, so every
    member records the same result.
    """

    message = "raftmon: request could not be applied"


class ErrRetryUndecidable(MvccError, ErrTimeoutDueToLeaderFail):
    """A proposal sent again after a leader change whose first copy is too old for the
    apply to tell whether it was applied (node/mvcc/dedup.py): applied nowhere, and to
    its client the timeout it would have had without the retry."""


class ErrStoreClosed(MvccError, ErrStopped):
    """The store was closed under a request: to a client, the server stopped."""


class ErrBackendDamaged(MvccError):
    """A read met a damaged page of this member's database.

    Answered as unavailable, not as etcd's data loss: the cluster's data is intact
    elsewhere, and etcd's clients retry an unavailable call on another member.
    """

    message = "etcdserver: mvcc: backend database is damaged on this member"


# mvcc.ErrWatcherNotExist / duplicate watch id texts (no "etcdserver: " prefix in
# etcd: they travel as a watch response's cancel_reason, not as an error status).
WATCH_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


# ---- the election service (v3election, clientv3/concurrency) ---------------------------
# Plain Go errors in etcd, with no gRPC status of their own: they answer as Unknown.


class ErrElectionNotLeader(EtcdError):
    message = "election: not leader"


class ErrElectionNoLeader(EtcdError):
    message = "election: no leader"


class ErrMissingLeaderKey(EtcdError):
    """Proclaim or Resign without a LeaderKey (v3election's ErrMissingLeaderKey)."""

    message = '"leader" field must be provided'


# ---- recovering a value from its text ------------------------------------------------


# Every class with a fixed text, by that text (ErrStoreClosed reads as ErrStopped).
_BY_MESSAGE: dict[str, type[EtcdError]] = {
    cls.message: cls
    for cls in (
        ErrNoLeader,
        ErrLeaderChanged,
        ErrTimeout,
        ErrTimeoutDueToLeaderFail,
        ErrTimeoutDueToConnectionLost,
        ErrRequestTooLarge,
        ErrMemberNotFound,
        ErrBadLeaderTransferee,
        ErrUnhealthy,
        ErrStopped,
        ErrCompacted,
        ErrFutureRev,
        ErrKeyNotProvided,
        ErrKeyNotFound,
        ErrValueProvided,
        ErrLeaseProvided,
        ErrTooManyOps,
        ErrDuplicateKey,
        ErrInvalidSortOption,
        ErrLeaseNotFound,
        ErrLeaseExists,
        ErrLeaseTTLTooLarge,
        ErrNotLeader,
        ErrNoSpace,
        ErrCorrupt,
        ErrUndecodable,
        ErrBackendDamaged,
        # a learner promotion's refusals, which a follower reads back from the leader
        ErrMemberNotLearner,
        ErrLearnerNotReady,
        ErrMemberNotEnoughStarted,
    )
}


def etcd_error(message: str) -> EtcdError:
    """The error value whose text is `message`; the base value for text no class has."""
    cls = _BY_MESSAGE.get(message)
    return cls() if cls is not None else EtcdError(message)


def from_exception(err: BaseException) -> EtcdError:
    """`err` as an etcd error: itself if it is one, else recovered from its text."""
    return err if isinstance(err, EtcdError) else etcd_error(str(err))


# The texts the server compares and passes around (timeouts are chosen by message).
NO_LEADER = ErrNoLeader.message
NOT_LEADER = ErrNotLeader.message
REQUEST_TIMEOUT = ErrTimeout.message
TIMEOUT_LEADER_FAIL = ErrTimeoutDueToLeaderFail.message
REQUEST_TOO_LARGE = ErrRequestTooLarge.message
NO_SPACE = ErrNoSpace.message
BAD_LEADER_TRANSFEREE = ErrBadLeaderTransferee.message
STOPPED = ErrStopped.message


# The server's call sites build these two through functions.
invalid_argument = ErrInvalidRequest
message_too_large = ErrMessageTooLarge
