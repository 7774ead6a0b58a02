"""What every job of one member's server shares.

etcd spreads the methods of one `EtcdServer` struct over raft.go, apply.go,
v3_server.go and the rest, all reading the same fields. Here each job is its own
class, and the fields they all read are this one value: the config, what bootstrap
opened, the inbox of the Ready loop, the peers, the counters, the observer, and the
leader as the loop last saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.raft import StateType

if TYPE_CHECKING:
    from node.config import MemberConfig
    from node.mvcc.lease import Lessor
    from node.server.bootstrap import Bootstrapped
    from node.server.counters import Faults, ServerCounters
    from node.server.inbox import Inbox
    from node.server.observer import MemberObserver
    from node.transport import Transport


@dataclass(slots=True)
class Leadership:
    """The cluster as the Ready loop last saw it (each Ready's soft and hard state)."""

    lead: int = 0  # 0: no leader known
    role: StateType = StateType.StateFollower
    term: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerContext:
    """The parts of one member's server that its jobs share (built by `EtcdServer`)."""

    cfg: MemberConfig
    opened: Bootstrapped  # storage, backend, WAL, snapshots and the Raft node
    lessor: Lessor
    inbox: Inbox  # where every job hands work to the Ready loop
    transport: Transport
    counters: ServerCounters
    faults: Faults
    observer: MemberObserver
    leadership: Leadership
