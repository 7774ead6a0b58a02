"""etcd's corruption check on a real 3-member cluster (node/server/corruption.py).

Healthy members agree on HashKV and Hash. One member's SQLite file is then edited while
it is stopped (one stored value changed, nothing else): the leader's periodic check
(--experimental-corrupt-check-time) finds its HashKV different at the same revision and
compact revision and raises the CORRUPT alarm through Raft, after which every member
refuses writes with etcd's error and shows the alarm in /health and the metrics. The
corrupted member restarted with --experimental-initial-corrupt-check refuses to start;
a healthy one passes the same check.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from lab.cluster import LocalCluster
from lab.procs import http_get
from tests.cluster.etcdjson import call, http_text, post_status, put, revision, wait_until

pytestmark = pytest.mark.cluster

CHECK = "--experimental-corrupt-check-time=300ms"


def peer_hash_kv(cluster: LocalCluster, name: str, rev: int) -> dict[str, Any]:
    """etcd's peer endpoint, as the leader's check asks it."""
    url = cluster.member(name).peer_url + "/members/hashkv"
    status, text = http_text(url, "GET", json.dumps({"revision": rev}).encode())
    assert status == 200, text
    answer: dict[str, Any] = json.loads(text)
    return answer


def alarms(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = call(url, "/v3/maintenance/alarm", {"action": "GET"}).get(
        "alarms", []
    )
    return found


def change_one_value(db: str, key: bytes, value: bytes) -> None:
    """What a flipped disk sector or a stray tool does: one stored value, nothing else."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            changed = conn.execute(
                "UPDATE kv SET value = ? WHERE key = ? AND id = (SELECT MAX(id) FROM kv WHERE "
                "key = ?)",
                (value, key, key),
            ).rowcount
        assert changed == 1
    finally:
        conn.close()


def test_a_corrupted_member_is_found_and_the_corrupt_alarm_raised(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster: LocalCluster = fresh_cluster(3, [CHECK])
    leader = cluster.wait_leader()
    urls = {m.name: m.client_url for m in cluster.members}
    for i in range(20):
        assert "error" not in put(urls[leader], f"/corrupt/{i % 5}", f"v{i}")
    call(urls[leader], "/v3/kv/compaction", {"revision": "10", "physical": True})
    rev = revision(urls[leader])
    wait_until(
        lambda: all(revision(u) == rev for u in urls.values()), what="every member at one rev"
    )

    # healthy: one HashKV and one Hash on every member
    answers = [peer_hash_kv(cluster, m.name, rev) for m in cluster.members]
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["compact_revision"] == 10
    assert answers[0]["header"]["revision"] == rev
    hashes = {call(u, "/v3/maintenance/hash", {})["hash"] for u in urls.values()}
    assert len(hashes) == 1, hashes
    leader_log = cluster.member(leader).log_path
    wait_until(
        lambda: leader_log.read_text().count('"number-of-peers-checked":2') >= 2,
        what="two periodic checks of both peers",
    )
    assert alarms(urls[leader]) == []  # healthy members: no alarm

    victim = next(m.name for m in cluster.members if m.name != leader)
    proc = cluster.member(victim).proc
    assert proc is not None
    proc.terminate()  # a clean stop: the edit below is the only difference
    proc.wait(timeout=15)
    db = cluster.member(victim).data_dir / "member" / "snap" / "db"
    change_one_value(str(db), b"/corrupt/3", b"evil")
    cluster.restart(victim)
    assert peer_hash_kv(cluster, victim, rev)["hash"] != answers[0]["hash"]

    corrupt = [{"alarm": "CORRUPT"}]  # etcd 3.4.23 names member 0, which jsonpb leaves out
    for name, url in urls.items():  # raised through Raft: every member applies it
        wait_until(lambda u=url: alarms(u) == corrupt, timeout=20, what=f"the alarm on {name}")
    for name, url in urls.items():
        status, body = post_status(url + "/v3/kv/put", {"key": "eA==", "value": "eA=="})
        assert body.get("message") == "etcdserver: corrupt cluster", (name, status, body)
        health = http_text(url + "/health")[1]
        assert json.loads(health) == {"health": "false", "reason": "ALARM CORRUPT"}, health
    metrics = (http_get(cluster.member(leader).metrics_url + "/metrics") or b"").decode()
    assert any(
        line.startswith("etcd_debugging_server_alarms{") and 'alarm_type="CORRUPT"' in line
        for line in metrics.splitlines()
    ), "no CORRUPT series"
    counts = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("etcd_mvcc_hash_rev_duration_seconds_count")
    ]
    assert counts, "no etcd_mvcc_hash_rev_duration_seconds"
    assert counts[0] > 0, counts

    # the initial check: the corrupted member refuses to start, a healthy one starts
    bad = cluster.member(victim)
    bad.args.append("--experimental-initial-corrupt-check")
    cluster.restart(victim, wait=False)
    wait_until(lambda: not bad.alive, timeout=20, what=f"{victim} refusing to start")
    assert bad.proc is not None
    assert bad.proc.returncode == 1, bad.log_tail()
    assert "found different hash values from remote peer" in bad.log_tail(80)
    assert "refusing to start: the initial corruption check failed" in bad.log_tail(80)
    good = next(m for m in cluster.members if m.name not in (victim, leader))
    good.args.append("--experimental-initial-corrupt-check")
    cluster.restart(good.name)
    assert "initial corruption checking passed" in good.log_tail(200)
