"""`Config`: everything a core is parameterised with, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.raft.messages import NONE

if TYPE_CHECKING:
    import random

    from node.raft.logger import RaftLogger
    from node.raft.messages import ConfState


@dataclass(frozen=True, kw_only=True)
class Config:
    """Parameters of one Raft member (etcd-raft's Config, snake_case).

    Ticks are logical: one tick is one heartbeat interval unit chosen by the driver (etcd's
    defaults: 100 ms heartbeat, 1000 ms election timeout = heartbeat_tick 1, election_tick 10).
    """

    id: int
    # Initial voters when the storage holds no ConfState (a fresh cluster); ignored otherwise.
    peers: tuple[int, ...] = ()
    # Initial learners beside `peers` (same rule: only when the storage holds no ConfState).
    learners: tuple[int, ...] = ()
    # The configuration at the driver's applied index. When given it wins over the storage's
    # ConfState and `peers`: conf changes applied after the last snapshot live in the state
    # machine, and a restarted member does not re-apply them. An empty ConfState() starts a
    # member that knows no configuration yet: it never campaigns until a snapshot or an
    # applied change makes it a voter (safe only if its first input is a snapshot, since
    # the log before the snapshot does not restate the bootstrap configuration).
    conf_state: ConfState | None = None
    election_tick: int = 10
    heartbeat_tick: int = 1
    # The only source of randomness (the election timeout jitter); None means Random(id).
    rng: random.Random | None = None
    check_quorum: bool = True
    pre_vote: bool = True
    # The last index the state machine applied (a restarted member must not re-apply).
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0  # 0: no byte limit on the inflight window
    logger: RaftLogger | None = None

    def validate(self) -> None:
        """Reject configurations etcd-raft rejects."""
        if self.id == NONE:
            raise ValueError("cannot use none as id")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election tick must be greater than heartbeat tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max inflight messages must be greater than 0")
        if self.max_size_per_msg <= 0:
            raise ValueError("max size per message must be greater than 0")
        if len(set(self.peers)) != len(self.peers):
            raise ValueError(f"duplicate peer ids in {self.peers}")
        if len(set(self.learners)) != len(self.learners):
            raise ValueError(f"duplicate learner ids in {self.learners}")
        both = set(self.peers) & set(self.learners)
        if both:
            raise ValueError(f"ids {sorted(both)} are in both peers and learners")
        cs = self.conf_state
        if cs is not None and set(cs.voters) & set(cs.learners):
            raise ValueError(f"conf_state has ids that are both voter and learner: {cs}")
