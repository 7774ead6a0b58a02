"""What no honest member sends: the checks a received message passes before the core sees it.

The codec decodes whatever 64-bit values a frame holds; this module decides whether the
message is one a member of this cluster could have produced on this stream. A message
that fails is dropped and counted by the receiver, never stepped into the core.

Why `WIRE_VALUE_LIMIT` is 2**62: terms and indexes only grow by one at a time (one
election, one entry), so a real cluster never comes near it (a term per millisecond
would take 146 million years). Everything this member derives from a received value
must stay encodable and storable: the core answers a term T with T+1 (PreVote
campaigns at term+1) and an index i with i+1; the codec and WAL carry u64, but the
MVCC store keeps indexes in SQLite INTEGER columns, which are signed 64-bit (2**63
overflows). 2**62 leaves a factor of two below the smallest of those limits, so no sum
of two accepted values can reach it either. A frame with term 2**64-1 used to move a
whole cluster to a term it could no longer encode (issue 18, finding 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.raft.messages import MessageType

if TYPE_CHECKING:
    from node.raft.messages import Message

WIRE_VALUE_LIMIT = 1 << 62
"""Terms and indexes a received message may carry are < this (see the module docstring)."""

_LIMIT_BITS = 62

# Types only the local member produces (etcd-io/raft's IsLocalMsg), plus MsgSnap, which
# peers send as a /raft/snapshot upload, never as a stream frame.
_NEVER_ON_A_STREAM = frozenset(
    {
        MessageType.MsgHup,
        MessageType.MsgBeat,
        MessageType.MsgUnreachable,
        MessageType.MsgSnapStatus,
        MessageType.MsgCheckQuorum,
        MessageType.MsgSnap,
    }
)


# A member stamps its term on everything it sends (RaftCore.send) except a proposal or a
# read-index request it forwards to the leader; in the core, term 0 means "local".
_MAY_CARRY_NO_TERM = frozenset({MessageType.MsgProp, MessageType.MsgReadIndex})


def out_of_range(msg: Message) -> bool:
    """True if any term or index in `msg` is >= WIRE_VALUE_LIMIT.

    All values are non-negative (the codec decodes unsigned), so OR-ing them sets bit 62
    or higher iff one of them does: one test for the header, one per entry.
    """
    acc = msg.term | msg.log_term | msg.index | msg.commit | msg.reject_hint
    for e in msg.entries:
        acc |= e.term | e.index
    snap = msg.snapshot
    if snap is not None:
        acc |= snap.metadata.term | snap.metadata.index
    return acc >> _LIMIT_BITS != 0


def refusal(msg: Message, sender: int, local: int, *, snapshot: bool = False) -> str | None:
    """Why `msg`, received from `sender` (the stream's admitted id), must be dropped; None if
    an honest member could have sent it. `snapshot` marks a /raft/snapshot upload."""
    if msg.frm != sender:
        return f"message from {msg.frm:x} on a stream from {sender:x}"
    if msg.to != local:
        return f"message for {msg.to:x} delivered to {local:x}"
    if snapshot:
        if msg.type is not MessageType.MsgSnap:
            return f"{msg.type.name} uploaded as a snapshot"
    elif msg.type in _NEVER_ON_A_STREAM:
        return f"{msg.type.name} is never sent on a stream"
    if msg.term == 0 and msg.type not in _MAY_CARRY_NO_TERM:
        return f"{msg.type.name} without a term"
    if out_of_range(msg):
        return f"term or index beyond {WIRE_VALUE_LIMIT} (term={msg.term})"
    return None
