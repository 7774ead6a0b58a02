"""etcd_server_leader_changes_seen_total counts leader changes, not a follower's pauses.

A follower stopped (SIGSTOP) for several election timeouts and resumed finds the same
leader in the same term: etcd's counter stays put on every member, and so must ours.
A real change (the leader killed, another elected) still counts on the survivors.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest

from lab.cluster import LocalCluster, MemberProcess
from tests.cluster.etcdjson import b64, call, wait_until

pytestmark = pytest.mark.cluster

METRIC = "etcd_server_leader_changes_seen_total"
# FAST's election timeout is 0.5 s; long enough for the leader to give up on the stopped
# follower's stream (its probes time out) and for the follower's election timer to lapse.
PAUSE_SECONDS = 15.0


def leader_changes(m: MemberProcess) -> float:
    with urllib.request.urlopen(m.metrics_url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(METRIC + " "):
                return float(line.split()[1])
    raise AssertionError(f"{METRIC} missing on {m.name}")


def counts(cluster: LocalCluster, names: list[str]) -> dict[str, float]:
    return {n: leader_changes(cluster.member(n)) for n in names}


def term_of(cluster: LocalCluster, name: str) -> int:
    status = cluster.status(name)
    assert status is not None, name
    return int(status["header"]["raft_term"])


def serves_linearizable_read(m: MemberProcess) -> bool:
    """The member reached the leader again: its linearizable read went through."""
    try:
        out = call(m.client_url, "/v3/kv/range", {"key": b64("probe")}, timeout=3)
    except OSError:
        return False
    return "error" not in out


def test_a_paused_and_resumed_follower_adds_no_leader_change(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    names = [m.name for m in cluster.members]
    follower = next(n for n in names if n != leader)
    before = counts(cluster, names)
    assert before == dict.fromkeys(names, 1.0)
    term_before = term_of(cluster, leader)

    cluster.pause(follower)
    time.sleep(PAUSE_SECONDS)
    cluster.resume(follower)

    wait_until(
        lambda: serves_linearizable_read(cluster.member(follower)),
        timeout=20,
        what="the resumed follower serves a linearizable read",
    )
    # a few more heartbeats, so a late phantom change would have been counted by now
    time.sleep(1.0)
    assert cluster.wait_leader() == leader
    assert term_of(cluster, leader) == term_before
    assert counts(cluster, names) == before


def test_a_real_leader_change_still_counts_on_the_survivors(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    survivors = [m.name for m in cluster.members if m.name != leader]
    before = counts(cluster, survivors)
    cluster.kill(leader)
    cluster.wait_leader(timeout=30, exclude=leader)
    after = counts(cluster, survivors)
    assert after == {n: before[n] + 1 for n in survivors}
