"""etcd_server_heartbeat_send_failures_total counts as etcd's timeout detector does.

A heartbeat to a peer that leaves more than two heartbeat intervals after the previous
one to that peer is one failure, per peer. A healthy idle cluster counts none; a leader
stopped for a few heartbeat intervals (well under the election timeout) counts its late
heartbeats to every peer once it runs again, and keeps its leadership.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest

from lab.cluster import LocalCluster, MemberProcess

pytestmark = pytest.mark.cluster

METRIC = "etcd_server_heartbeat_send_failures_total"
STALL_SECONDS = 0.3  # 6 heartbeats of FAST's 50 ms; its election timeout is 500 ms


def failures(m: MemberProcess) -> float:
    with urllib.request.urlopen(m.metrics_url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(METRIC + " "):
                return float(line.split()[1])
    raise AssertionError(f"{METRIC} missing on {m.name}")


def term_of(cluster: LocalCluster, name: str) -> int:
    status = cluster.status(name)
    assert status is not None, name
    return int(status["header"]["raft_term"])


def test_a_stalled_leader_counts_a_late_heartbeat_per_peer(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster: LocalCluster = fresh_cluster(3)
    for _attempt in range(3):  # a loaded box may stretch the stall past an election
        leader_name = cluster.wait_leader()
        leader = cluster.member(leader_name)
        term = term_of(cluster, leader_name)
        before = failures(leader)
        followers = [m for m in cluster.members if m.name != leader_name]
        followers_before = [failures(m) for m in followers]
        cluster.pause(leader_name)
        time.sleep(STALL_SECONDS)
        cluster.resume(leader_name)
        deadline = time.monotonic() + 10
        while failures(leader) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        if cluster.wait_leader() != leader_name or term_of(cluster, leader_name) != term:
            continue  # it lost its leadership: not the case under test, stall it again
        # one late heartbeat to each of its two peers (more if the box stalled it again)
        assert failures(leader) >= before + 2
        # and says so in its log, in etcd's words
        assert "leader failed to send out heartbeat on time" in leader.log_tail(400)
        # only a leader sends heartbeats
        assert [failures(m) for m in followers] == followers_before
        return
    pytest.fail("the leader lost its leadership in every attempt (box too loaded?)")
