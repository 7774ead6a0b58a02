"""Pure majority arithmetic: quorum size, committed index and vote outcome for a voter set.

Quorum = N // 2 + 1 (the course's table): 1->1, 2->2, 3->2, 4->3, 5->3, 6->4, 7->4.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping


class VoteResult(enum.IntEnum):
    """Outcome of counting votes (or acks) against a majority."""

    VotePending = 1  # neither a majority for nor against yet
    VoteLost = 2  # a majority can no longer be reached
    VoteWon = 3  # a majority granted


def quorum_size(n: int) -> int:
    """Members that must agree in an `n`-member cluster."""
    return n // 2 + 1


def failures_tolerated(n: int) -> int:
    """Members that may fail while the rest still form a quorum."""
    return n - quorum_size(n) if n > 0 else 0


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """Largest index durably matched by a majority of `voters` (missing voters count as 0).

    Raft §5.3: an index is committed once a majority stores it. An empty voter set has no
    constraint, so it returns a huge index (etcd: math.MaxUint64); callers never commit past
    their own log anyway.
    """
    return majority_match([match.get(v, 0) for v in voters])


def majority_match(matches: list[int]) -> int:
    """`committed_index` over the voters' match indexes, given as a list (one per voter):
    the tracker computes it per acknowledgement, so it builds no mapping for it."""
    if not matches:
        return 1 << 63
    matches.sort(reverse=True)
    return matches[len(matches) // 2]  # the quorum-th largest: index quorum_size(n) - 1


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Tally `votes` (True granted, False rejected, absent pending) over `voters`."""
    if not voters:
        return VoteResult.VoteWon
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is None:
            continue
        if got:
            granted += 1
        else:
            rejected += 1
    q = quorum_size(len(voters))
    if granted >= q:
        return VoteResult.VoteWon
    if len(voters) - rejected >= q:
        return VoteResult.VotePending
    return VoteResult.VoteLost
