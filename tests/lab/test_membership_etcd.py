"""lab/membership.py's procedures on a real etcd 3.4 cluster, the system whose API they speak.

add as a learner -> the refusal to promote it before it started (etcd's words) -> start
it with the flags `member add` implies -> promote -> remove -> replace a killed member
with a fresh one that catches up; writes before and after are all there. The same
procedures drive `LocalCluster` once raftmon answers the membership calls
(tests/lab/test_membership_raftmon.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import membership
from lab.certs import make_authority
from lab.membership import EtcdMembershipCluster, MembershipError
from lab.procs import http_json
from tests.helpers import require_tool

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(240)]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _put(url: str, key: str) -> None:
    answer = http_json(url + "/v3/kv/put", {"key": _b64(key), "value": _b64("v")}, timeout=5)
    assert "error" not in answer, answer


def _count(url: str, prefix: str) -> int:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = {"key": _b64(prefix), "range_end": _b64(end), "count_only": True}
    return int(http_json(url + "/v3/kv/range", body, timeout=5).get("count", 0))


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdMembershipCluster]:
    binary = require_tool("etcd")
    # A low snapshot count, so a member added later catches up by snapshot.
    cluster = EtcdMembershipCluster(binary, tmp_path, 3, extra_args=["--snapshot-count=50"])
    cluster.start(timeout=60)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_quorum_arithmetic_is_the_courses_table() -> None:
    table = {n: (membership.quorum(n), membership.failures_tolerated(n)) for n in range(1, 8)}
    assert table == {1: (1, 0), 2: (2, 0), 3: (2, 1), 4: (3, 1), 5: (3, 2), 6: (4, 2), 7: (4, 3)}


def test_initial_cluster_is_what_member_add_prints() -> None:
    new = membership.Member("9", "", ("http://h:4",), (), True)
    members = [
        membership.Member("1", "e1", ("http://h:1",), ("http://h:11",), False),
        membership.Member("2", "", ("http://h:2",), (), False),  # added, never started
        new,
    ]
    assert membership.initial_cluster_for(new, "e4", members) == "e1=http://h:1,e4=http://h:4"


def test_add_learner_promote_remove_on_etcd(etcd3: EtcdMembershipCluster) -> None:
    url = etcd3.live_endpoints()[0]
    for i in range(120):  # past --snapshot-count: the log is compacted
        _put(url, f"m/{i:03d}")
    assert etcd3.voters_and_learners() == (3, 0)

    name = etcd3.add_member(learner=True, start=False)
    listed = {m.peer_urls[0]: m for m in etcd3.member_list()}
    new = listed[etcd3.member(name).peer_url]
    assert new.is_learner
    assert not new.started
    assert new.client_urls == ()
    with pytest.raises(MembershipError) as refused:
        membership.promote_member(etcd3.live_endpoints(), new.id, timeout=0)
    assert membership.NOT_IN_SYNC in refused.value.message

    etcd3.start_member(name, timeout=60)
    assert etcd3.voters_and_learners() == (3, 1)
    etcd3.promote(name, timeout=60)
    assert etcd3.voters_and_learners() == (4, 0)
    assert _count(etcd3.member(name).client_url, "m/") == 120

    etcd3.remove(name)
    assert etcd3.voters_and_learners() == (3, 0)
    assert name not in [m.name for m in etcd3.members]
    with pytest.raises(MembershipError, match="member not found"):
        membership.remove_member(etcd3.live_endpoints(), new.id)


def test_replace_a_killed_member_on_etcd(etcd3: EtcdMembershipCluster) -> None:
    lead = etcd3.wait_leader(20)
    victim = next(m.name for m in etcd3.members if m.name != lead)
    etcd3.kill(victim)
    url = etcd3.live_endpoints()[0]
    for i in range(120):
        _put(url, f"r/{i:03d}")
    fresh = etcd3.replace(victim, timeout=90)
    assert fresh == "e4"
    assert sorted(m.name for m in etcd3.members) == sorted(
        [n for n in ("e1", "e2", "e3") if n != victim] + ["e4"]
    )
    assert etcd3.voters_and_learners() == (3, 0)
    assert all(info.started for info in etcd3.member_list())
    assert _count(etcd3.member(fresh).client_url, "r/") == 120
    _put(etcd3.member(fresh).client_url, "after-replace")


def test_add_and_promote_on_an_mtls_etcd_cluster(tmp_path: Path) -> None:
    """A member added at run time gets its own certificate from the cluster's CA."""
    binary = require_tool("etcd")
    authority = make_authority(tmp_path / "ca")
    cluster = EtcdMembershipCluster(binary, tmp_path / "etcd", 3, authority=authority)
    try:
        cluster.start(timeout=60)
        name = cluster.add_member(learner=True, timeout=60)
        cluster.promote(name, timeout=60)
        assert cluster.member(name).client_url.startswith("https://")
        assert cluster.voters_and_learners() == (4, 0)
    finally:
        cluster.stop()
