"""`raftmon cluster`'s membership commands: the words an operator types, what they call.

A stand-in cluster records the calls; the procedures themselves are proven on real etcd
(test_membership_etcd.py) and on raftmon (test_membership_raftmon.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from lab import cluster as cli
from lab.membership import Member


class _Recorder:
    """Records membership calls; answers a member list of two voters and a learner."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.members: list[Any] = []

    def add_member(self, learner: bool = False) -> str:
        self.calls.append(("add", learner))
        return "m4"

    def promote(self, name: str) -> int:
        self.calls.append(("promote", name))
        return 2

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))

    def replace(self, name: str) -> str:
        self.calls.append(("replace", name))
        return "m5"

    def member_list(self) -> list[Member]:
        return [
            Member("1", "m1", ("http://a:1",), ("http://a:11",), False),
            Member("2", "m2", ("http://a:2",), ("http://a:12",), False),
            Member("4", "", ("http://a:4",), (), True),
        ]

    def write_endpoints_file(self) -> None:
        self.calls.append(("endpoints", None))


@pytest.mark.parametrize(
    ("line", "call", "said"),
    [
        ("add", ("add", False), "m4 joined as a voter"),
        ("add --learner", ("add", True), "m4 joined as a learner"),
        ("promote m4", ("promote", "m4"), "2 'not in sync yet' refusals"),
        ("remove m2", ("remove", "m2"), "remove m2: done"),
        ("replace m3", ("replace", "m3"), "m5 joined and caught up"),
    ],
)
def test_each_command_calls_its_procedure(
    line: str, call: tuple[str, Any], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = _Recorder()
    words = line.split()
    assert cli._membership_command(rec, words[0], words[1:])  # type: ignore[arg-type]
    assert rec.calls == [call, ("endpoints", None)]
    assert said in capsys.readouterr().out


def test_members_lists_learners_and_unstarted_members(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli._membership_command(_Recorder(), "members", [])  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "m1" in out
    assert "(unstarted)  learner" in out


def test_wrong_words_are_not_a_membership_command() -> None:
    rec = _Recorder()
    for words in (["add", "--voter"], ["promote"], ["remove", "m1", "m2"], ["grow"]):
        assert not cli._membership_command(rec, words[0], words[1:])  # type: ignore[arg-type]
    assert rec.calls == []


def test_help_lists_the_membership_commands() -> None:
    for word in ("add [--learner]", "promote <member>", "remove <member>", "replace <member>"):
        assert word in cli.HELP_COMMANDS
