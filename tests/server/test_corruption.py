"""The corruption checks' decisions (node/server/corruption.py), against a stand-in server.

Each case is one line of etcd 3.4's checkHashKV / CheckInitialHashKV: which peer answers
raise the CORRUPT alarm (member 0, once), which are skipped, and the peer endpoint's
wire form both ways.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from node.errors import ErrCompacted, ErrFutureRev
from node.mvcc import requests as rq
from node.server.corruption import (
    CorruptionChecker,
    CorruptionError,
    parse_peer_answer,
    parse_peer_request,
    peer_answer,
)
from node.transport.peerclient import PeerRequestFailed

LEADER = rq.HashKVResponse(revision=20, hash=111, compact_revision=10)


def peer(revision: int = 20, hash: int = 111, compact: int = 10) -> tuple[int, str]:
    """A peer's HTTP answer, as its /members/hashkv writes it."""
    resp = rq.HashKVResponse(revision=revision, hash=hash, compact_revision=compact)
    return 200, json.dumps(peer_answer(resp))


class FakeServer:
    """What the checker uses of EtcdServer: its hashes, its peers, Raft."""

    def __init__(self, answers: dict[int, Any], mine: list[rq.HashKVResponse]) -> None:
        self.member_id = 1
        self.peer_ids = tuple(answers)
        self.cfg = SimpleNamespace(request_timeout_seconds=1.0)
        self._answers = answers
        self._mine = list(mine)
        self.proposed: list[Any] = []
        self.alarm_list: list[tuple[int, str]] = []
        self.transport = SimpleNamespace(client=SimpleNamespace(hash_kv_of=self._ask))
        self.kv = SimpleNamespace(alarms=lambda: self.alarm_list)

    async def _ask(self, member_id: int, revision: int, seconds: float) -> tuple[int, str]:
        answer = self._answers[member_id]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, tuple)
        return answer

    async def hash_kv(self, revision: int) -> rq.HashKVResponse:
        assert revision == 0
        return self._mine.pop(0) if len(self._mine) > 1 else self._mine[0]

    async def read_barrier(self) -> None:
        return None

    async def propose(self, req: Any) -> Any:
        self.proposed.append(req)
        return rq.AlarmResponse()


def checker(answers: dict[int, Any], *mine: rq.HashKVResponse) -> tuple[Any, FakeServer]:
    server = FakeServer(answers, list(mine) or [LEADER])
    return CorruptionChecker(server), server  # type: ignore[arg-type]


CORRUPT = rq.AlarmRequest(action=rq.AlarmAction.ACTIVATE, member_id=0, alarm=rq.AlarmType.CORRUPT)


async def test_equal_peers_raise_nothing() -> None:
    check, server = checker({2: peer(), 3: peer()})
    assert await check.check() is False
    assert server.proposed == []


async def test_a_peer_with_another_hash_at_the_same_compact_revision_raises_corrupt_once() -> None:
    check, server = checker({2: peer(hash=222), 3: peer(hash=333)})
    assert await check.check() is True
    assert server.proposed == [CORRUPT]


async def test_a_peer_compacted_differently_is_not_compared() -> None:
    check, server = checker({2: peer(hash=222, compact=8)})
    assert await check.check() is False
    assert server.proposed == []


@pytest.mark.parametrize(
    "answer",
    [peer(revision=21), peer(compact=12, hash=5)],
    ids=["peer-revision-ahead", "peer-compact-revision-ahead"],
)
async def test_a_peer_ahead_of_the_leader_raises_corrupt(answer: tuple[int, str]) -> None:
    check, server = checker({2: answer})
    assert await check.check() is True
    assert server.proposed == [CORRUPT]


async def test_the_leaders_own_hash_changing_at_the_same_revision_raises_corrupt() -> None:
    other = rq.HashKVResponse(revision=20, hash=999, compact_revision=10)
    check, server = checker({2: peer()}, LEADER, other)
    assert await check.check() is True
    assert server.proposed == [CORRUPT]


@pytest.mark.parametrize(
    "failure",
    [ErrFutureRev(), ErrCompacted(), PeerRequestFailed("refused")],
    ids=["behind", "compacted", "down"],
)
async def test_peers_that_cannot_answer_are_skipped(failure: Exception) -> None:
    check, server = checker({2: failure, 3: peer()})
    assert await check.check() is False
    assert server.proposed == []


async def test_an_alarm_already_raised_is_not_proposed_again() -> None:
    check, server = checker({2: peer(hash=222)})
    server.alarm_list = [(0, "CORRUPT")]
    assert await check.check() is True
    assert server.proposed == []


async def test_initial_check_refuses_a_different_hash_at_the_same_compact_revision() -> None:
    check, _ = checker({2: peer(), 3: peer(hash=5)})
    with pytest.raises(CorruptionError):
        await check.initial_check()


async def test_initial_check_passes_over_other_compactions_and_unreachable_peers() -> None:
    check, server = checker({2: peer(hash=5, compact=8), 3: PeerRequestFailed("down")})
    await check.initial_check()
    assert server.proposed == []


def test_peer_wire_form_is_etcds() -> None:
    assert parse_peer_request(b"") == 0
    assert parse_peer_request(b"{}") == 0
    assert parse_peer_request(b'{"revision":7}') == 7
    with pytest.raises(ValueError, match="integer"):
        parse_peer_request(b'{"revision":"7"}')  # Go's json refuses a string for an int64
    resp = rq.HashKVResponse(revision=4, hash=0, compact_revision=-1)
    assert peer_answer(resp) == {"header": {"revision": 4}, "compact_revision": -1}
    assert parse_peer_answer(200, json.dumps(peer_answer(resp))) == resp
    with pytest.raises(ErrCompacted):
        parse_peer_answer(400, "mvcc: required revision has been compacted\n")
    with pytest.raises(ErrFutureRev):
        parse_peer_answer(400, "mvcc: required revision is a future revision\n")
    with pytest.raises(PeerRequestFailed):
        parse_peer_answer(500, "boom")
