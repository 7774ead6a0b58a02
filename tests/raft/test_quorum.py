"""Quorum arithmetic: the course's table for 1..7 members, committed index and vote tallies."""

from __future__ import annotations

import pytest

from node.raft.members import members
from node.raft.messages import ConfState, MessageType
from node.raft.quorum import (
    VoteResult,
    committed_index,
    failures_tolerated,
    quorum_size,
    vote_result,
)
from node.raft.tracker import ProgressTracker

# Members, quorum, failures tolerated: the course's table, verbatim.
COURSE_TABLE = [(1, 1, 0), (2, 2, 0), (3, 2, 1), (4, 3, 1), (5, 3, 2), (6, 4, 2), (7, 4, 3)]


@pytest.mark.parametrize(("members", "quorum", "tolerated"), COURSE_TABLE)
def test_quorum_table(members: int, quorum: int, tolerated: int) -> None:
    assert quorum_size(members) == quorum
    assert failures_tolerated(members) == tolerated
    voters = list(range(1, members + 1))
    # Exactly `quorum` grants win; one fewer with the rest rejecting loses.
    assert vote_result(voters, dict.fromkeys(voters[:quorum], True)) == VoteResult.VoteWon
    lost = dict.fromkeys(voters, False)
    for v in voters[: quorum - 1]:
        lost[v] = True
    assert vote_result(voters, lost) == VoteResult.VoteLost
    # With `tolerated` members down, the rest still commit an index.
    match = dict.fromkeys(voters[: members - tolerated], 7)
    assert committed_index(voters, match) == 7
    if tolerated < members:
        fewer = dict.fromkeys(voters[: members - tolerated - 1], 7)
        assert committed_index(voters, fewer) == 0


def test_even_split_has_no_quorum_on_either_side() -> None:
    voters = [1, 2, 3, 4]
    assert vote_result(voters, {1: True, 2: True, 3: False, 4: False}) == VoteResult.VoteLost
    assert committed_index(voters, {1: 5, 2: 5}) == 0


def test_vote_pending_until_decided() -> None:
    voters = [1, 2, 3, 4, 5]
    assert vote_result(voters, {1: True, 2: True}) == VoteResult.VotePending
    assert vote_result(voters, {1: True, 2: False, 3: False}) == VoteResult.VotePending
    assert vote_result(voters, {1: False, 2: False, 3: False}) == VoteResult.VoteLost


@pytest.mark.parametrize(
    ("match", "expected"),
    [({1: 10, 2: 8, 3: 3}, 8), ({1: 10, 2: 10, 3: 10}, 10), ({1: 10}, 0), ({}, 0)],
)
def test_committed_index_is_the_majority_match(match: dict[int, int], expected: int) -> None:
    assert committed_index([1, 2, 3], match) == expected


def test_tracker_committed_follows_membership_changes() -> None:
    """The tracker's per-ack committed index counts exactly the voters in force: a learner
    never, a promoted learner or an added voter from then on, a removed voter no more."""
    tracker = ProgressTracker(ConfState(voters=(1, 2), learners=(4,)), 16)
    for member, match in ((1, 9), (2, 2), (4, 9)):
        tracker.progress[member].match = match
    assert tracker.committed() == 2  # both voters needed; the learner's 9 does not count
    tracker.promote(4)
    assert tracker.committed() == 9  # 9, 9, 2
    tracker.add(5, 20, learner=False)
    assert tracker.committed() == 2  # 9, 9, 2, 0: three of four needed
    tracker.remove(2)
    assert tracker.committed() == 9  # 9, 9, 0


def test_members_are_the_enums_own() -> None:
    fast = members(MessageType)
    assert fast.MsgApp is MessageType.MsgApp
    assert fast.MsgAppResp.name == "MsgAppResp"
