"""Small values describing a member's role, shared by the core, `Ready` and `Status`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from node.raft.messages import NONE


class StateType(enum.IntEnum):
    """A member's role; names verbatim from etcd-raft."""

    StateFollower = 0
    StateCandidate = 1
    StateLeader = 2
    StatePreCandidate = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting when it changes; never persisted."""

    lead: int = NONE
    role: StateType = StateType.StateFollower


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the state machine has applied `index`."""

    index: int
    request_ctx: bytes
