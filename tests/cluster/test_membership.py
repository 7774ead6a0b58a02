"""Membership changes on real processes, through the JSON gateway: etcd's calls and words.

A learner is added, started with a fresh data dir and `--initial-cluster-state existing`,
catches up, is promoted and serves; a member is removed and stops itself; every refusal
answers etcd's error and changes nothing; membership survives a restart of everyone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster, MemberProcess
from lab.members import placement_flags
from lab.procs import free_ports, http_json
from tests.cluster.conftest import FAILED, start_cluster
from tests.cluster.etcdjson import get, post_status, put, unb64
from tests.cluster.test_partition import isolate

pytestmark = pytest.mark.timeout(240)


def members(url: str) -> list[dict[str, Any]]:
    out = http_json(url + "/v3/cluster/member/list", {}, timeout=10)
    assert "members" in out, out
    return list(out["members"])


def by_id(url: str) -> dict[str, dict[str, Any]]:
    return {m["ID"]: m for m in members(url)}


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def new_member(cluster: LocalCluster, name: str) -> MemberProcess:
    """A member process (not started) with free ports and a fresh data dir."""
    return cluster._new_member(name)


def start_joining(cluster: LocalCluster, m: MemberProcess) -> None:
    """Start `m` as etcd's docs say after `member add`: state existing, and the running
    members plus itself as --initial-cluster."""
    running = [x for x in cluster.members if x.alive]
    initial = ",".join(f"{x.name}={x.peer_url}" for x in [*running, m])
    flags = placement_flags(m, initial, cluster.token)
    flags[-1] = "--initial-cluster-state=existing"
    tuning = ("--heartbeat-interval", "--election-timeout", "--snapshot-count", "--enable-fault")
    same = [a for a in cluster.members[0].args if a.startswith(tuning)]
    m.args = [*flags, f"--listen-metrics-urls={m.metrics_url}", *same]
    cluster.members.append(m)
    cluster._spawn(m)


def add(url: str, body: dict[str, Any]) -> dict[str, Any]:
    return reconfigure(url, "add", body)


def reconfigure(url: str, call: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST member/<call>; while the answer is "unhealthy cluster" (etcd's strict check
    wants every voter connected for 5 s, which a cluster just started or changed is not),
    retry."""
    for _ in range(40):
        out = http_json(url + f"/v3/cluster/member/{call}", body, timeout=15)
        if out.get("error") != "etcdserver: unhealthy cluster":
            break
        time.sleep(0.25)
    assert isinstance(out, dict)
    return out


def status(url: str) -> dict[str, Any]:
    out = http_json(url + "/v3/maintenance/status", {}, timeout=5)
    assert isinstance(out, dict)
    return out


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    c = start_cluster(tmp_path, 3, ["--snapshot-count=200"])
    try:
        yield c
    finally:
        if request.node.stash.get(FAILED, False):
            print(c.logs_tail(60))
        c.stop()


def test_learner_joins_catches_up_is_promoted_and_a_member_is_removed(
    cluster: LocalCluster,
) -> None:
    url = cluster.members[0].client_url
    for i in range(300):  # past --snapshot-count: the new member may need a snapshot
        put(url, f"k{i}", f"v{i}")
    before = members(url)
    assert len(before) == 3
    assert all(m.get("name") and m.get("clientURLs") for m in before)  # published

    m4 = new_member(cluster, "m4")
    added = add(url, {"peerURLs": [m4.peer_url], "isLearner": True})
    new_id = added["member"]["ID"]
    assert added["member"] == {"ID": new_id, "peerURLs": [m4.peer_url], "isLearner": True}
    assert len(added["members"]) == 4
    # unstarted: no name, no client URLs, on every member
    for m in cluster.members:
        wait_for("the learner listed", lambda m=m: new_id in by_id(m.client_url))
        assert "name" not in by_id(m.client_url)[new_id]

    start_joining(cluster, m4)
    cluster.wait_member_ready("m4", timeout=30)
    wait_for("m4 published", lambda: by_id(url)[new_id].get("name") == "m4")
    assert by_id(url)[new_id]["clientURLs"] == [m4.client_url]
    # a learner serves serializable reads only, as etcd 3.4
    wait_for(
        "the learner caught up",
        lambda: (
            status(m4.client_url).get("raftAppliedIndex") == status(url).get("raftAppliedIndex")
        ),
    )
    got = get(m4.client_url, "k299", serializable=True)
    assert unb64(got["kvs"][0]["value"]) == "v299"
    code, refused = post_status(m4.client_url + "/v3/kv/put", {"key": "eA==", "value": "eQ=="})
    assert refused["error"] == "etcdserver: rpc not supported for learner", (code, refused)

    # promote (sent to a follower: it forwards to the leader), then m4 serves writes
    lead = cluster.wait_leader()
    follower = next(m for m in cluster.members[:3] if m.name != lead)
    promoted = http_json(follower.client_url + "/v3/cluster/member/promote", {"ID": new_id})
    assert "error" not in promoted, promoted
    assert not by_id(url)[new_id].get("isLearner")
    wait_for("m4 a voter", lambda: "error" not in put(m4.client_url, "from-m4", "1"))

    # remove the leader: it hands leadership over and stops itself, the others keep
    # serving, the list shrinks everywhere
    m2 = cluster.member(cluster.wait_leader())
    url = next(m.client_url for m in cluster.members if m.name != m2.name)
    m2_id = next(i for i, m in by_id(url).items() if m.get("name") == m2.name)
    removed = reconfigure(url, "remove", {"ID": m2_id})
    assert "error" not in removed, removed
    assert m2_id not in {m["ID"] for m in removed["members"]}
    assert m2.proc is not None
    m2.proc.wait(timeout=30)
    assert "permanently removed from the cluster" in m2.log_path.read_text()
    for rest in cluster.members:
        if rest is not m2:
            c = rest.client_url
            wait_for(f"{rest.name} lists 3 members", lambda c=c: len(members(c)) == 3)
    # a write forwarded to the old leader in its last moment is lost (etcd's too): clients
    # retry, so does this check, a bounded number of times
    wait_for("a write after the removal", lambda: "error" not in put(url, "after-remove", "1"))


def test_refusals_answer_etcds_errors_and_change_nothing(cluster: LocalCluster) -> None:
    url = cluster.members[0].client_url
    listed = by_id(url)
    some_id = next(iter(listed))
    some_peer = listed[some_id]["peerURLs"][0]
    cases: list[tuple[str, dict[str, Any], str]] = [  # (call, JSON body, etcd's error)
        ("add", {"peerURLs": [some_peer]}, "etcdserver: Peer URLs already exists"),
        ("add", {"peerURLs": ["not-a-url"]}, "etcdserver: given member URLs are invalid"),
        ("add", {"peerURLs": []}, "etcdserver: given member URLs are invalid"),
        ("remove", {"ID": "12345"}, "etcdserver: member not found"),
        ("promote", {"ID": some_id}, "etcdserver: can only promote a learner member"),
        ("promote", {"ID": "12345"}, "etcdserver: member not found"),
        (
            "update",
            {"ID": "12345", "peerURLs": ["http://127.0.0.1:1"]},
            "etcdserver: member not found",
        ),
    ]
    for call, body, words in cases:
        code, answer = post_status(url + f"/v3/cluster/member/{call}", body)
        assert answer.get("error") == words, (call, body, code, answer)
        assert by_id(url) == listed
    # one learner at most (etcd 3.4)
    ports = free_ports(2)
    first = add(url, {"peerURLs": [f"http://127.0.0.1:{ports[0]}"], "isLearner": True})
    assert "member" in first, first
    code, second = post_status(
        url + "/v3/cluster/member/add",
        {"peerURLs": [f"http://127.0.0.1:{ports[1]}"], "isLearner": True},
    )
    assert second.get("error") == "etcdserver: too many learner members in cluster", second
    # an unstarted learner cannot be promoted: it has not caught up
    code, early = post_status(url + "/v3/cluster/member/promote", {"ID": first["member"]["ID"]})
    assert early.get("error") == (
        "etcdserver: can only promote a learner member which is in sync with leader"
    ), early


def test_membership_survives_a_restart_of_every_member(cluster: LocalCluster) -> None:
    url = cluster.members[0].client_url
    port = free_ports(1)[0]
    added = add(url, {"peerURLs": [f"http://127.0.0.1:{port}"], "isLearner": True})
    new_id = added["member"]["ID"]
    for m in list(cluster.members):
        cluster.kill(m.name)
    for m in list(cluster.members):
        cluster.restart(m.name, wait=False)
    cluster.wait_healthy(timeout=30)
    for m in cluster.members:
        listed = wait_for("members after restart", lambda m=m: by_id(m.client_url))
        assert len(listed) == 4
        assert listed[new_id].get("isLearner") is True


def test_a_member_removed_while_partitioned_stops_when_it_returns_and_disrupts_nothing(
    cluster: LocalCluster,
) -> None:
    lead = cluster.wait_leader()
    victim = next(m for m in cluster.members if m.name != lead)
    rest = [m for m in cluster.members if m is not victim]
    url = rest[0].client_url
    isolate(cluster, victim.name, True)
    victim_id = next(i for i, m in by_id(url).items() if m.get("name") == victim.name)
    removed = reconfigure(url, "remove", {"ID": victim_id})
    assert "error" not in removed, removed
    before = status(url)
    for m in cluster.members:  # heal: the others no longer know the victim as a peer
        http_json(m.metrics_url + "/raftmon/faults", method="DELETE", timeout=10)
    assert victim.proc is not None
    victim.proc.wait(timeout=30)  # refused with 410 Gone by the others: it stops itself
    assert "permanently removed from the cluster" in victim.log_path.read_text()
    after = status(url)
    assert (after["leader"], after["raftTerm"]) == (before["leader"], before["raftTerm"])
    assert "error" not in put(url, "after-return", "1")
    for m in rest:
        assert len(members(m.client_url)) == 2


def test_kill_9_in_the_middle_of_a_membership_change_loses_no_acknowledged_write(
    cluster: LocalCluster,
) -> None:
    url = cluster.members[0].client_url
    acked = {}
    for i in range(40):
        key = f"during-change-{i}"
        if "error" not in put(url, key, str(i)):
            acked[key] = str(i)
        if i == 10:  # a learner added while writes go on
            port = free_ports(1)[0]
            add(url, {"peerURLs": [f"http://127.0.0.1:{port}"], "isLearner": True})
            cluster.kill(cluster.members[2].name)  # a member dies right after the change
    cluster.restart(cluster.members[2].name, wait=True)
    cluster.wait_leader()
    lists = [
        wait_for(
            f"{m.name} lists the learner",
            lambda m=m: (lambda got: got if len(got) == 4 else None)(by_id(m.client_url)),
        )
        for m in cluster.members
    ]
    assert all(listed.keys() == lists[0].keys() for listed in lists)
    for m in cluster.members:
        for key, value in acked.items():
            got = get(m.client_url, key)
            assert "kvs" in got, (m.name, key, got)
            assert unb64(got["kvs"][0]["value"]) == value, (m.name, key)
