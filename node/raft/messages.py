"""Values exchanged between the Raft core, its driver, the WAL and the transport.

These types are the contract every other part of the member is written against:
the WAL persists `Entry`, `HardState` and `SnapshotMetadata`; the transport carries
`Message`; the state machine applies `Entry.data`. Names follow etcd-io/raft's
raftpb so transcripts and logs line up with etcd's.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

NONE = 0
"""The "no node" id: no leader known, no vote cast."""


class MessageType(enum.IntEnum):
    """Raft message kinds; member names kept verbatim from etcd's raftpb."""

    MsgHup = 0  # local: start an election (campaign)
    MsgBeat = 1  # local: leader should broadcast a heartbeat
    MsgProp = 2  # proposal, forwarded to the leader when it lands on a follower
    MsgApp = 3  # append entries
    MsgAppResp = 4
    MsgVote = 5
    MsgVoteResp = 6
    MsgSnap = 7  # install snapshot
    MsgHeartbeat = 8
    MsgHeartbeatResp = 9
    MsgUnreachable = 10  # local: the transport could not reach a peer
    MsgSnapStatus = 11  # local: the transport finished (or failed) sending a snapshot
    MsgCheckQuorum = 12  # local: leader checks it heard from a quorum
    MsgTransferLeader = 13
    MsgTimeoutNow = 14  # leader transfer: "campaign now, skip the election timeout"
    MsgReadIndex = 15
    MsgReadIndexResp = 16
    MsgPreVote = 17
    MsgPreVoteResp = 18


class EntryType(enum.IntEnum):
    """What an entry's data means to the state machine."""

    EntryNormal = 0
    EntryConfChange = 1  # data is an encoded `ConfChange`: a membership change


@dataclass(slots=True)
class Entry:
    """One log entry. An entry with empty data is a leader's no-op for its term."""

    term: int
    index: int
    type: EntryType = EntryType.EntryNormal
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it leaves (Raft §3.8)."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The cluster configuration: an explicit value, never constants in the code."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


class ConfChangeType(enum.IntEnum):
    """One membership change at a time (etcd-raft's ConfChange v1; raftpb's numbers)."""

    ConfChangeAddNode = 0  # add a voter, or promote the learner of that id
    ConfChangeRemoveNode = 1
    ConfChangeUpdateNode = 2  # the configuration stays; the server updates peer URLs
    ConfChangeAddLearnerNode = 3


_CONF_CHANGE = struct.Struct("<BQQ")  # type, node_id, id; context follows


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change proposed through the log as an `EntryConfChange` entry.

    `id` lets the proposer recognise its own change when it is applied (etcd's cc.ID);
    `context` is opaque to the core (the server puts the member's attributes there).
    A change whose `node_id` is NONE changes nothing: a server applies it in place of a
    change it refused, so the core still learns the pending change is done.
    """

    type: ConfChangeType
    node_id: int
    id: int = 0
    context: bytes = b""

    def encode(self) -> bytes:
        return _CONF_CHANGE.pack(self.type, self.node_id, self.id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Parse `encode`'s bytes; ValueError when they are not a conf change."""
        if len(data) < _CONF_CHANGE.size:
            raise ValueError(f"conf change of {len(data)} bytes is too short")
        kind, node_id, cc_id = _CONF_CHANGE.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, cc_id, bytes(data[_CONF_CHANGE.size :]))


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """Position of a snapshot in the log and the configuration at that point."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state machine image up to `metadata.index`; `data` is opaque to the core."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(slots=True)
class Message:
    """A Raft message. Fields unused by a type keep their zero value, as in raftpb."""

    type: MessageType
    to: int = NONE
    frm: int = NONE  # `from` is a Python keyword
    term: int = 0
    log_term: int = 0  # MsgApp: term of entry at `index`; vote: candidate's last term
    index: int = 0  # MsgApp: index preceding `entries`; vote: candidate's last index
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""  # read-index request context, campaign-transfer marker
