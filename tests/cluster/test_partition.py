"""Partitions by fault injection: the minority cannot write, the majority continues."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from lab.cluster import LocalCluster
from lab.procs import http_json
from tests.cluster.etcdjson import put, value_of, wait_until

pytestmark = pytest.mark.cluster


def isolate(cluster: LocalCluster, name: str, on: bool) -> None:
    """Drop traffic both ways between `name` and every other member."""
    victim = cluster.member(name)
    others = [m for m in cluster.members if m.name != name]
    spec = {m.name: {"drop": on} for m in others}
    assert "error" not in http_json(victim.metrics_url + "/raftmon/faults", {"peers": spec})
    for m in others:
        out = http_json(m.metrics_url + "/raftmon/faults", {"peers": {name: {"drop": on}}})
        assert "error" not in out, out


def test_minority_side_cannot_write_and_majority_continues_then_converges(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    minority = leader  # the hardest case: the old leader ends up alone
    isolate(cluster, minority, True)
    majority = [m for m in cluster.members if m.name != minority]
    # the majority elects a new leader and keeps accepting writes
    wait_until(
        lambda: "error" not in put(majority[0].client_url, "part/majority", "ok"),
        timeout=15,
        what="majority accepts writes",
    )
    assert value_of(majority[1].client_url, "part/majority") == "ok"
    # the isolated member answers with etcd's error, never a success
    started = time.monotonic()
    resp = put(cluster.member(minority).client_url, "part/minority", "lost", timeout=30)
    assert resp.get("code") == 14, resp  # gRPC Unavailable: no leader / request timed out
    assert resp["error"].startswith("etcdserver: "), resp
    assert time.monotonic() - started < 30
    # heal: the old leader rejoins, steps down on the higher term and converges
    isolate(cluster, minority, False)
    wait_until(
        lambda: (
            value_of(cluster.member(minority).client_url, "part/majority", serializable=True)
            == "ok"
        ),
        timeout=20,
        what="minority converges after heal",
    )
    assert value_of(cluster.member(minority).client_url, "part/minority") is None


def test_four_members_split_two_two_write_nowhere(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(4)
    cluster.wait_leader()
    left, right = cluster.members[:2], cluster.members[2:]
    for a in left:
        out = http_json(
            a.metrics_url + "/raftmon/faults", {"peers": {b.name: {"drop": True} for b in right}}
        )
        assert "error" not in out
    for b in right:
        out = http_json(
            b.metrics_url + "/raftmon/faults", {"peers": {a.name: {"drop": True} for a in left}}
        )
        assert "error" not in out
    # All four at once: each waits out the request timeout for a leader that never comes.
    with ThreadPoolExecutor(max_workers=len(cluster.members)) as pool:
        answers = pool.map(
            lambda m: (m.name, put(m.client_url, f"split/{m.name}", "x", timeout=30)),
            cluster.members,
        )
        for name, resp in answers:
            assert resp.get("code") == 14, (name, resp)
