"""Per-member progress and votes for the current configuration (etcd's ProgressTracker)."""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

from node.raft import quorum
from node.raft.messages import ConfState
from node.raft.tracker.inflights import Inflights
from node.raft.tracker.progress import Progress

if TYPE_CHECKING:
    from node.raft.quorum import VoteResult


# Each acknowledgement takes the voters' match indexes: a C getter, no comprehension frame.
_MATCH = attrgetter("match")


class ProgressTracker:
    """The configuration (voters and learners), each member's `Progress` and election votes.

    Invariants: `voters` and `learners` are sorted and disjoint, and `progress` holds exactly
    one `Progress` per member of either, whose `is_learner` says which set it is in;
    `_voter_progress` holds the voters' `Progress` objects, in `voters` order.
    """

    __slots__ = (
        "_ids",
        "_voter_progress",
        "learners",
        "max_inflight",
        "max_inflight_bytes",
        "progress",
        "voters",
        "votes",
    )

    def __init__(self, conf: ConfState, max_inflight: int, max_inflight_bytes: int = 0) -> None:
        self.voters: tuple[int, ...] = tuple(sorted(set(conf.voters)))
        self.learners: tuple[int, ...] = tuple(sorted(set(conf.learners) - set(self.voters)))
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.votes: dict[int, bool] = {}
        self.progress: dict[int, Progress] = {
            v: Progress(0, 1, self.new_inflights()) for v in self.voters
        }
        for lrn in self.learners:
            self.progress[lrn] = Progress(0, 1, self.new_inflights(), is_learner=True)
        self._ids = tuple(sorted(self.progress))
        self._voter_progress = tuple(self.progress[v] for v in self.voters)

    def new_inflights(self) -> Inflights:
        return Inflights(self.max_inflight, self.max_inflight_bytes)

    def conf_state(self) -> ConfState:
        return ConfState(voters=self.voters, learners=self.learners)

    def ids(self) -> tuple[int, ...]:
        """Every member (voters and learners), in id order: replication reaches them all."""
        return self._ids

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    # -- configuration changes (used by node.raft.confchange) -----------------------------
    def add(self, member: int, last_index: int, *, learner: bool) -> None:
        """A new member: probed from just past the leader's last index, as etcd-raft does.

        It counts as recently active so that CheckQuorum does not step the leader down
        before the newcomer had a chance to answer.
        """
        pr = Progress(0, last_index + 1, self.new_inflights(), is_learner=learner)
        pr.recent_active = True
        self.progress[member] = pr
        self._rebuild_sets()

    def promote(self, member: int) -> None:
        """A learner becomes a voter; its replication progress carries over."""
        self.progress[member].is_learner = False
        self._rebuild_sets()

    def remove(self, member: int) -> None:
        del self.progress[member]
        self.votes.pop(member, None)
        self._rebuild_sets()

    def _rebuild_sets(self) -> None:
        prs = self.progress
        self.voters = tuple(sorted(i for i, pr in prs.items() if not pr.is_learner))
        self.learners = tuple(sorted(i for i, pr in prs.items() if pr.is_learner))
        self._ids = tuple(sorted(prs))
        self._voter_progress = tuple(prs[v] for v in self.voters)

    # -- quorum arithmetic over voters only -------------------------------------------------
    def committed(self) -> int:
        """Largest index durably matched by a majority of voters (learners never count)."""
        return quorum.majority_match(list(map(_MATCH, self._voter_progress)))

    def quorum_active(self) -> bool:
        """Whether a majority of voters was recently active (CheckQuorum, Raft thesis §6.2)."""
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
