"""Only the leader of a term is obeyed at that term (the rule behind forged_leader_messages.txt).

The cases around the rule that must keep working: the first leader a member hears of at a
term (as candidate, after a vote, after a restart) is obeyed; a leader's message at a
higher term is obeyed as before. Dropped messages are counted and logged as a warning.
"""

from __future__ import annotations

import random

import pytest

from node.raft import Config, Entry, MemoryStorage, Message, MessageType, RawNode, StateType
from node.raft.logger import RaftLogger

MT = MessageType


class Lines:
    """A RaftLogger that keeps the warnings."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg: str) -> None:
        return None

    def info(self, msg: str) -> None:
        return None

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def error(self, msg: str) -> None:
        return None


def follower(lead: int, term: int = 3) -> tuple[RawNode, Lines]:
    """Member 2 of (1, 2, 3), following `lead` at `term` (or no one if lead is 0)."""
    lines = Lines()
    logger: RaftLogger = lines
    node = RawNode(
        Config(id=2, peers=(1, 2, 3), rng=random.Random(2), logger=logger), MemoryStorage()
    )
    node.raft.become_follower(term, lead)
    return node, lines


def append(frm: int, term: int, data: bytes = b"x") -> Message:
    return Message(
        MT.MsgApp, to=2, frm=frm, term=term, index=0, log_term=0, commit=1,
        entries=[Entry(term=term, index=1, data=data)],
    )  # fmt: skip


@pytest.mark.parametrize("mtype", [MT.MsgApp, MT.MsgHeartbeat])
def test_a_leader_message_from_another_member_at_the_same_term_is_dropped(
    mtype: MessageType,
) -> None:
    node, lines = follower(lead=1)
    msg = append(3, 3) if mtype is MT.MsgApp else Message(mtype, to=2, frm=3, term=3)
    node.step(msg)
    raft = node.raft
    assert (raft.lead, raft.term, raft.raft_log.last_index(), raft.raft_log.committed) == (
        1,
        3,
        0,
        0,
    )
    assert node.status().messages_dropped == 1
    assert lines.warnings == [
        f"2 [term: 3] ignored a {mtype.name} message from 3 [term: 3]: the leader at term 3 is 1"
    ]
    assert not raft.msgs  # no answer to the impostor
    assert not raft.msgs_after_append


def test_the_leader_of_the_term_is_obeyed() -> None:
    node, lines = follower(lead=1)
    node.step(append(1, 3))
    assert node.raft.raft_log.last_index() == 1
    assert lines.warnings == []


@pytest.mark.parametrize("state", ["follower without a leader", "candidate", "pre-candidate"])
def test_the_first_leader_heard_of_at_a_term_is_obeyed(state: str) -> None:
    node, _ = follower(lead=0)
    if state == "candidate":
        node.raft.become_candidate()  # term 4, voted for itself
    elif state == "pre-candidate":
        node.raft.become_pre_candidate()
    term = node.raft.term
    node.step(append(3, term))
    assert (node.raft.state, node.raft.lead) == (StateType.StateFollower, 3)
    assert node.raft.raft_log.last_index() == 1


def test_a_higher_term_still_makes_its_sender_the_leader() -> None:
    """A new leader elected without us (we were behind): Raft's rule, unchanged here."""
    node, _ = follower(lead=1)
    node.step(append(3, 4))
    assert (node.raft.term, node.raft.lead, node.raft.raft_log.last_index()) == (4, 3, 1)


def test_a_term_less_append_is_dropped_even_from_the_leader() -> None:
    node, lines = follower(lead=1)
    node.step(append(1, 0))
    assert node.raft.raft_log.last_index() == 0
    assert len(lines.warnings) == 1
