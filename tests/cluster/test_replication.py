"""Replication, reads and durability on real 3-member clusters (real processes, sockets)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import b64, call, get, put, revision, value_of, wait_until

pytestmark = pytest.mark.cluster


def test_put_through_any_member_is_seen_by_a_linearizable_get_on_every_member(
    cluster3: LocalCluster,
) -> None:
    for writer in cluster3.members:
        key = f"any-member/{writer.name}"
        resp = put(writer.client_url, key, f"written-via-{writer.name}")
        assert "error" not in resp, resp
        for reader in cluster3.members:
            # linearizable by default: must see the write at once, from any member
            assert value_of(reader.client_url, key) == f"written-via-{writer.name}"


def test_serializable_get_catches_up_on_every_member(cluster3: LocalCluster) -> None:
    leader = cluster3.member(cluster3.wait_leader())
    rev = int(put(leader.client_url, "serial/key", "v1")["header"]["revision"])
    for m in cluster3.members:
        wait_until(
            lambda m=m: value_of(m.client_url, "serial/key", serializable=True) == "v1",
            what=f"serializable read on {m.name}",
        )
        assert revision(m.client_url) >= rev


def test_killing_the_leader_elects_a_new_one_and_keeps_every_acknowledged_write(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    # small snapshot interval and catch-up window: the old leader must come back by snapshot
    cluster = fresh_cluster(
        3, ["--snapshot-count=100", "--experimental-snapshot-catchup-entries=20"]
    )
    old = cluster.wait_leader()
    acked: dict[str, str] = {}
    for i in range(40):
        url = cluster.members[i % 3].client_url
        resp = put(url, f"k/{i:04d}", f"v{i}")
        if "error" not in resp:
            acked[f"k/{i:04d}"] = f"v{i}"
    assert len(acked) == 40
    cluster.kill(old)
    new = cluster.wait_leader(exclude=old, timeout=15)
    assert new != old
    survivors = [m for m in cluster.members if m.name != old]
    for i in range(40, 400):
        resp = put(survivors[i % 2].client_url, f"k/{i:04d}", f"v{i}")
        assert "error" not in resp, resp
        acked[f"k/{i:04d}"] = f"v{i}"
    cluster.restart(old)
    old_url = cluster.member(old).client_url
    wait_until(
        lambda: value_of(old_url, "k/0399", serializable=True) == "v399",
        timeout=30,
        what="restarted old leader catches up",
    )
    listing = call(
        old_url, "/v3/kv/range", {"key": b64("k/"), "range_end": b64("k0"), "serializable": True}
    )
    got = {kv["key"]: kv["value"] for kv in listing["kvs"]}
    assert got == {b64(k): b64(v) for k, v in acked.items()}
    assert "applied snapshot from leader" in cluster.member(old).log_path.read_text()


def test_acknowledged_writes_survive_kill_9_of_the_whole_cluster(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3)
    cluster.wait_leader()
    acked = {}
    for i in range(60):
        resp = put(cluster.members[i % 3].client_url, f"durable/{i:03d}", f"value-{i}")
        assert "error" not in resp, resp
        acked[f"durable/{i:03d}"] = f"value-{i}"
    for m in cluster.members:
        cluster.kill(m.name)
    for m in cluster.members:
        cluster.restart(m.name, wait=False)
    cluster.wait_healthy(timeout=30)
    url = cluster.members[0].client_url
    listing = call(url, "/v3/kv/range", {"key": b64("durable/"), "range_end": b64("durable0")})
    got = {kv["key"]: kv["value"] for kv in listing.get("kvs", [])}
    assert got == {b64(k): b64(v) for k, v in acked.items()}


def test_a_stale_follower_read_is_never_returned_by_default(cluster3: LocalCluster) -> None:
    """Linearizable read right after a write through a different member sees the write."""
    a, b = cluster3.members[0].client_url, cluster3.members[2].client_url
    for i in range(20):
        put(a, "lin/key", f"v{i}")
        assert value_of(b, "lin/key") == f"v{i}"
    assert get(b, "lin/key")["count"] == "1"
