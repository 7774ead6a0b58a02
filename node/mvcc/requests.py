"""The state machine's request and response values: etcd v3's messages, in Python.

Field names and enum numbers are etcd's protobuf ones (etcdserverpb / mvccpb),
keys and values are `bytes`, so the gateway's JSON codec is a mechanical
mapping and transcripts line up with etcd's. Responses carry only `revision`
from etcd's ResponseHeader: cluster_id, member_id and raft_term belong to the
member, and the gateway adds them.

Replicated requests (put, range-in-txn, delete_range, txn, compaction, lease
grant/revoke, alarm) travel as Raft entry data through `node.mvcc.codec`, which
imports these values (never the reverse: the values know nothing of their wire
form). The lease read requests (keep-alive, time-to-live, leases) are local to
the leader, as in etcd.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeAlias


class CompareTarget(enum.IntEnum):
    """etcdserverpb.Compare.CompareTarget."""

    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(enum.IntEnum):
    """etcdserverpb.Compare.CompareResult (LESS means stored < given)."""

    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class SortOrder(enum.IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class EventType(enum.IntEnum):
    """mvccpb.Event.EventType."""

    PUT = 0
    DELETE = 1


class WatchFilter(enum.IntEnum):
    """etcdserverpb.WatchCreateRequest.FilterType."""

    NOPUT = 0
    NODELETE = 1


class AlarmAction(enum.IntEnum):
    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


class AlarmType(enum.IntEnum):
    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


# ---- values -------------------------------------------------------------------------
@dataclass(slots=True)
class KeyValue:
    """mvccpb.KeyValue. A deleted key's event carries only key and mod_revision."""

    key: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


@dataclass(slots=True)
class Event:
    """mvccpb.Event: type, the key after the change, and (when asked) the key before."""

    type: int
    kv: KeyValue
    prev_kv: KeyValue | None = None


# ---- KV -------------------------------------------------------------------------------
@dataclass(slots=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(slots=True)
class PutResponse:
    revision: int = 0
    prev_kv: KeyValue | None = None


@dataclass(slots=True)
class RangeRequest:
    """range_end: b"" = the key alone; b"\\0" = every key >= key; else [key, range_end)."""

    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: int = 0
    sort_target: int = 0
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(slots=True)
class RangeResponse:
    revision: int = 0
    kvs: list[KeyValue] = field(default_factory=list)
    more: bool = False
    count: int = 0


@dataclass(slots=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(slots=True)
class DeleteRangeResponse:
    revision: int = 0
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(slots=True)
class Compare:
    """etcdserverpb.Compare; the target_union is spread over one field per target."""

    key: bytes
    target: int = CompareTarget.VALUE
    result: int = CompareResult.EQUAL
    value: bytes = b""
    version: int = 0
    create_revision: int = 0
    mod_revision: int = 0
    lease: int = 0
    range_end: bytes = b""


@dataclass(slots=True)
class TxnRequest:
    compare: list[Compare] = field(default_factory=list)
    success: list[RequestOp] = field(default_factory=list)
    failure: list[RequestOp] = field(default_factory=list)


@dataclass(slots=True)
class TxnResponse:
    """A nested txn's response has revision 0, as etcd leaves its header empty."""

    revision: int = 0
    succeeded: bool = False
    responses: list[ResponseOp] = field(default_factory=list)


# etcd's RequestOp / ResponseOp are oneofs; here they are the request types themselves.
RequestOp: TypeAlias = "PutRequest | RangeRequest | DeleteRangeRequest | TxnRequest"
ResponseOp: TypeAlias = "PutResponse | RangeResponse | DeleteRangeResponse | TxnResponse"


@dataclass(slots=True)
class CompactionRequest:
    revision: int
    physical: bool = False


@dataclass(slots=True)
class CompactionResponse:
    revision: int = 0


# ---- leases ---------------------------------------------------------------------------
@dataclass(slots=True)
class LeaseGrantRequest:
    """ttl in seconds; id 0 lets the member choose (the proposer should, see lease.py)."""

    ttl: int
    id: int = 0


@dataclass(slots=True)
class LeaseGrantResponse:
    revision: int = 0
    id: int = 0
    ttl: int = 0
    error: str = ""


@dataclass(slots=True)
class LeaseRevokeRequest:
    """Client revoke and leader-decided expiry alike (etcd proposes a revoke on expiry)."""

    id: int


@dataclass(slots=True)
class LeaseRevokeResponse:
    revision: int = 0


@dataclass(slots=True)
class LeaseKeepAliveRequest:
    id: int


@dataclass(slots=True)
class LeaseKeepAliveResponse:
    """ttl 0 means the lease is unknown (etcd answers so instead of an error)."""

    revision: int = 0
    id: int = 0
    ttl: int = 0


@dataclass(slots=True)
class LeaseTimeToLiveRequest:
    id: int
    keys: bool = False


@dataclass(slots=True)
class LeaseTimeToLiveResponse:
    """ttl -1 means the lease is unknown or expired (etcd's answer, not an error)."""

    revision: int = 0
    id: int = 0
    ttl: int = 0
    granted_ttl: int = 0
    keys: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class LeaseLeasesRequest:
    pass


@dataclass(slots=True)
class LeaseLeasesResponse:
    revision: int = 0
    leases: list[int] = field(default_factory=list)


# ---- maintenance ----------------------------------------------------------------------
@dataclass(slots=True)
class AlarmMember:
    member_id: int
    alarm: int


@dataclass(slots=True)
class AlarmRequest:
    action: int = AlarmAction.GET
    member_id: int = 0
    alarm: int = AlarmType.NONE


@dataclass(slots=True)
class MemberAttrRequest:
    """A started member publishes its name and client URLs (etcd's publish).

    `client_urls` is the URLs joined by commas: the entry codec has no list of strings.
    """

    member_id: int = 0
    name: bytes = b""
    client_urls: bytes = b""


@dataclass(slots=True)
class MemberAttrResponse:
    revision: int = 0


@dataclass(slots=True)
class AlarmResponse:
    revision: int = 0
    alarms: list[AlarmMember] = field(default_factory=list)


@dataclass(slots=True)
class HashResponse:
    """etcdserverpb.HashResponse: a hash of the whole store (see node/mvcc/hash.py)."""

    revision: int = 0
    hash: int = 0  # uint32


@dataclass(slots=True)
class HashKVResponse:
    """etcdserverpb.HashKVResponse: the key history's hash up to a revision.

    `revision` is the member's current revision (etcd's header), not the one hashed;
    `compact_revision` is -1 for a store never compacted, as etcd's compactMainRev.
    """

    revision: int = 0
    hash: int = 0  # uint32
    compact_revision: int = -1


# ---- watch (local to a member, never replicated) -------------------------------------
@dataclass(slots=True)
class WatchCreateRequest:
    """start_revision 0 = from the next revision; watch_id 0 = let the stream choose."""

    key: bytes
    range_end: bytes = b""
    start_revision: int = 0
    progress_notify: bool = False
    filters: list[int] = field(default_factory=list)
    prev_kv: bool = False
    watch_id: int = 0


@dataclass(slots=True)
class WatchResponse:
    """watch_id -1 marks a stream-wide progress notification (etcd 3.4)."""

    watch_id: int
    revision: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class SnapshotChunk:
    """One etcdserverpb.SnapshotResponse of Maintenance.Snapshot's stream.

    etcd 3.4 sends no header. `remaining_bytes` counts the database bytes still to come
    after this blob; the last message holds the sha256 of every blob before it and
    says 0, as does the last database blob.
    """

    remaining_bytes: int
    blob: bytes


Request: TypeAlias = (
    "PutRequest | RangeRequest | DeleteRangeRequest | TxnRequest | CompactionRequest"
    " | LeaseGrantRequest | LeaseRevokeRequest | AlarmRequest"
)
Response: TypeAlias = (
    "PutResponse | RangeResponse | DeleteRangeResponse | TxnResponse | CompactionResponse"
    " | LeaseGrantResponse | LeaseRevokeResponse | AlarmResponse"
)

__all__ = [
    "AlarmAction",
    "AlarmMember",
    "AlarmRequest",
    "AlarmResponse",
    "AlarmType",
    "CompactionRequest",
    "CompactionResponse",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "DeleteRangeRequest",
    "DeleteRangeResponse",
    "Event",
    "EventType",
    "HashKVResponse",
    "HashResponse",
    "KeyValue",
    "LeaseGrantRequest",
    "LeaseGrantResponse",
    "LeaseKeepAliveRequest",
    "LeaseKeepAliveResponse",
    "LeaseLeasesRequest",
    "LeaseLeasesResponse",
    "LeaseRevokeRequest",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveRequest",
    "LeaseTimeToLiveResponse",
    "PutRequest",
    "PutResponse",
    "RangeRequest",
    "RangeResponse",
    "Request",
    "RequestOp",
    "Response",
    "ResponseOp",
    "SnapshotChunk",
    "SortOrder",
    "SortTarget",
    "TxnRequest",
    "TxnResponse",
    "WatchCreateRequest",
    "WatchFilter",
    "WatchResponse",
]
