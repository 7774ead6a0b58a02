"""`LocalCluster`'s membership procedures on raftmon members: the same steps, the same
answers as on etcd 3.4 (test_membership_etcd.py), through the JSON gateway."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import membership
from lab.cluster import LocalCluster
from lab.membership import MembershipError
from lab.procs import http_json, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _put(url: str, key: str) -> None:
    answer = http_json(url + "/v3/kv/put", {"key": _b64(key), "value": _b64("v")}, timeout=5)
    assert "error" not in answer, answer


def _count(url: str, prefix: str) -> int:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = {"key": _b64(prefix), "range_end": _b64(end), "count_only": True}
    answer = http_json(url + "/v3/kv/range", body, timeout=5)
    assert "error" not in answer or "no leader" in answer["error"], answer
    return int(answer.get("count", 0))


@pytest.fixture
def raftmon3(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        tmp_path,
        3,
        extra_args=["--heartbeat-interval=100", "--election-timeout=1000", "--snapshot-count=50"],
    )
    try:
        cluster.start(timeout=60)
        yield cluster
    finally:
        cluster.stop()


def test_add_learner_promote_remove_on_raftmon(raftmon3: LocalCluster) -> None:
    url = raftmon3.live_endpoints()[0]
    for i in range(120):
        _put(url, f"m/{i:03d}")
    name = raftmon3.add_member(learner=True, start=False)
    assert name == "m4"
    new = next(i for i in raftmon3.member_list() if raftmon3.member(name).peer_url in i.peer_urls)
    assert new.is_learner
    assert not new.started
    with pytest.raises(MembershipError) as refused:
        membership.promote_member(raftmon3.live_endpoints(), new.id, timeout=0)
    assert membership.NOT_IN_SYNC in refused.value.message

    raftmon3.start_member(name, timeout=60)
    assert raftmon3.voters_and_learners() == (3, 1)
    raftmon3.promote(name, timeout=60)
    assert raftmon3.voters_and_learners() == (4, 0)
    assert _count(raftmon3.member(name).client_url, "m/") == 120

    raftmon3.remove(name)
    assert raftmon3.voters_and_learners() == (3, 0)
    assert "m4" not in [m.name for m in raftmon3.members]
    with pytest.raises(MembershipError, match="member not found"):
        membership.remove_member(raftmon3.live_endpoints(), new.id)


def test_replace_a_killed_member_on_raftmon(raftmon3: LocalCluster) -> None:
    lead = raftmon3.wait_leader(20)
    victim = next(m.name for m in raftmon3.members if m.name != lead)
    raftmon3.kill(victim)
    url = raftmon3.live_endpoints()[0]
    for i in range(120):
        _put(url, f"r/{i:03d}")
    fresh = raftmon3.replace(victim, timeout=90)
    assert fresh == "m4"
    assert raftmon3.voters_and_learners() == (3, 0)
    assert all(info.started for info in raftmon3.member_list())
    assert _count(raftmon3.member(fresh).client_url, "r/") == 120
    _put(raftmon3.member(fresh).client_url, "after-replace")
    # The endpoints file follows the membership: the operator's scripts read it.
    assert raftmon3.member(fresh).client_url in (raftmon3.base_dir / "endpoints").read_text()
    raftmon3.restart(fresh, timeout=60)  # a joined member restarts from its own data dir
    # It answers before it hears from the leader ("no leader"); then it has every key.
    url = raftmon3.member(fresh).client_url
    wait_until("the restarted member serves its keys", lambda: _count(url, "r/") == 120, 30)
