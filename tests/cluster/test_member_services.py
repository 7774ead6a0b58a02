"""What a member serves besides KV: health and version endpoints, /v3beta, lease expiry
through Raft, periodic auto-compaction, and the fault endpoints (only when enabled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from lab.procs import http_json
from tests.cluster.conftest import FAST
from tests.cluster.etcdjson import b64, call, http_text, post_status, put, value_of, wait_until

pytestmark = pytest.mark.cluster


def test_health_version_and_v3beta_answer_as_etcd(cluster3: LocalCluster) -> None:
    url = cluster3.members[1].client_url
    status, body = http_text(url + "/health")
    assert status == 200
    assert json.loads(body)["health"] == "true"
    for probe in ("/livez", "/readyz"):
        assert http_text(url + probe)[0] == 200, probe
    status, body = http_text(url + "/version")
    assert status == 200
    assert set(json.loads(body)) == {"etcdserver", "etcdcluster"}
    # /v3beta is the same API (etcd 3.4 serves both)
    out = call(url, "/v3beta/kv/put", {"key": b64("beta/k"), "value": b64("v")})
    assert "error" not in out
    assert value_of(url, "beta/k") == "v"


def test_an_expired_lease_deletes_its_keys_on_every_member(cluster3: LocalCluster) -> None:
    leader = cluster3.member(cluster3.wait_leader())
    lease = call(leader.client_url, "/v3/lease/grant", {"TTL": 2})["ID"]
    assert "error" not in put(leader.client_url, "lease/k", "v", lease=lease)
    for m in cluster3.members:
        assert value_of(m.client_url, "lease/k") == "v"
    # The leader decides the expiry and revokes through Raft: every member deletes the key.
    for m in cluster3.members:
        wait_until(
            lambda m=m: value_of(m.client_url, "lease/k", serializable=True) is None,
            timeout=20,
            what=f"lease/k deleted on {m.name}",
        )
    ttl = call(leader.client_url, "/v3/lease/timetolive", {"ID": lease})
    assert ttl["TTL"] == "-1"  # etcd: an expired (revoked) lease reports TTL -1


def test_periodic_auto_compaction_compacts_old_revisions(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(
        1, ["--auto-compaction-mode=periodic", "--auto-compaction-retention=2s"]
    )
    url = cluster.members[0].client_url
    first = int(put(url, "ac/k", "0")["header"]["revision"])

    def compacted() -> bool:
        put(url, "ac/k", str(time.monotonic()))  # keep revisions coming
        status, body = post_status(url + "/v3/kv/range", {"key": b64("ac/k"), "revision": first})
        return status == 400 and body.get("code") == 11

    wait_until(compacted, timeout=30, interval=0.2, what="revision 'first' compacted away")
    assert value_of(url, "ac/k") is not None  # the current value is kept


def test_fault_endpoints_exist_only_with_the_flag(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "nofaults", 1, extra_args=FAST, fault_injection=False)
    cluster.start()
    try:
        m = cluster.members[0]
        status, _ = http_text(m.metrics_url + "/raftmon/faults")
        assert status == 404
        assert http_text(m.client_url + "/raftmon/faults")[0] == 404
        assert "error" not in put(m.client_url, "k", "v")  # the member itself is fine
    finally:
        cluster.stop()


def test_paused_ticks_on_the_leader_let_the_others_elect_a_new_one(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3)
    old = cluster.wait_leader()
    frozen = cluster.member(old)
    assert "error" not in http_json(frozen.metrics_url + "/raftmon/faults", {"ticks_paused": True})
    _, metrics = http_text(frozen.metrics_url + "/metrics")
    assert "raftmon_fault_raft_ticks_paused 1.0" in metrics
    # A leader whose clock stopped sends no heartbeats: the followers time out and elect.
    frozen_id = call(frozen.client_url, "/v3/maintenance/status", {})["header"]["member_id"]
    others = [m for m in cluster.members if m.name != old]

    def new_leader() -> bool:
        seen = {
            call(m.client_url, "/v3/maintenance/status", {}, timeout=2)["leader"] for m in others
        }
        return len(seen) == 1 and seen.isdisjoint({"0", frozen_id})

    wait_until(new_leader, timeout=20, what="a new leader among the followers")
    assert "error" not in http_json(frozen.metrics_url + "/raftmon/faults", {"ticks_paused": False})
    assert "error" not in put(others[0].client_url, "after/pause", "ok")
