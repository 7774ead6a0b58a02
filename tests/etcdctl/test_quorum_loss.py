"""The course's quorum arithmetic through etcdctl, on raftmon and on etcd side by side.

Two of three members are killed (kill -9); the one left has no quorum. What etcdctl
shows must read the same on both: serializable reads still answer from the member's
own copy, linearizable reads and writes cannot, the member says it has no leader.
This module gets a fresh pair of clusters (the `pair` fixture is per module).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.procs import wait_until
from tests.etcdctl.conftest import Pair
from tests.etcdctl.ctl import Etcdctl, Ran

pytestmark = [pytest.mark.cluster, pytest.mark.tools]


@pytest.fixture(scope="module")
def lost_quorum(pair: Pair) -> Pair:
    """Both clusters with /foo=bar, then only their first member alive, leaderless."""
    assert pair.same("put", "/foo", "bar") == Ran(0, "OK\n", "")
    for ctl in pair.ctls():
        for m in ctl.members[1:]:
            ctl.cluster.kill(m.name)
    for ctl in pair.ctls():
        wait_until("the member left has no leader", _leaderless(ctl), timeout=30)
    return pair


def _leaderless(ctl: Etcdctl) -> Callable[[], bool]:
    return lambda: ctl.status(0).get("leader", 0) == 0  # etcdctl omits a zero leader


def test_without_quorum_serializable_reads_answer_and_linearizable_ones_cannot(
    lost_quorum: Pair,
) -> None:
    pair = lost_quorum
    assert pair.same("get", "--consistency=s", "/foo") == Ran(0, "/foo\nbar\n", "")
    refused = pair.same("get", "/foo", "--command-timeout=2s")
    assert (refused.rc, refused.out) == (1, ""), refused
    pair.same("endpoint", "status", "-w", "table")
    pair.same("endpoint", "health", "--command-timeout=2s")
    pair.same("member", "list", rows=True)
    pair.same("alarm", "list", "--command-timeout=2s")  # a Raft request in etcd


def test_without_quorum_a_put_waits_for_a_leader_until_the_deadline(lost_quorum: Pair) -> None:
    lost_quorum.same("put", "/foo", "baz", "--command-timeout=2s")
