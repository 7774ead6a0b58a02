"""Per-member progress and votes for the current configuration (etcd's ProgressTracker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.raft import quorum
from node.raft.tracker.inflights import Inflights
from node.raft.tracker.progress import Progress

if TYPE_CHECKING:
    from node.raft.messages import ConfState
    from node.raft.quorum import VoteResult


class ProgressTracker:
    """The configuration (an explicit `ConfState`), each voter's `Progress` and election votes."""

    __slots__ = ("conf", "max_inflight", "max_inflight_bytes", "progress", "voters", "votes")

    def __init__(self, conf: ConfState, max_inflight: int, max_inflight_bytes: int = 0) -> None:
        self.conf = conf
        self.voters: tuple[int, ...] = tuple(sorted(set(conf.voters)))
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.votes: dict[int, bool] = {}
        self.progress: dict[int, Progress] = {
            v: Progress(0, 1, self.new_inflights()) for v in self.voters
        }

    def new_inflights(self) -> Inflights:
        return Inflights(self.max_inflight, self.max_inflight_bytes)

    def conf_state(self) -> ConfState:
        return self.conf

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def committed(self) -> int:
        """Largest index durably matched by a majority of voters."""
        prs = self.progress
        return quorum.committed_index(self.voters, {v: prs[v].match for v in self.voters})

    def quorum_active(self) -> bool:
        """Whether a majority was recently active (CheckQuorum, Raft thesis §6.2)."""
        prs = self.progress
        active = {v: prs[v].recent_active for v in self.voters}
        return quorum.vote_result(self.voters, active) == quorum.VoteResult.VoteWon

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, member: int, granted: bool) -> None:
        """Record a vote; only the first vote of each member in an election counts."""
        self.votes.setdefault(member, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, quorum.vote_result(self.voters, self.votes)
