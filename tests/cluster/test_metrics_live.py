"""The exporter's metrics mean what etcd's mean, on a live 3-member cluster.

Values are read from each member's real /metrics; a real Prometheus then
scrapes the cluster and every family in the catalog must have live series,
except the ones listed below that only exist while something goes wrong.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.catalog import CATALOG
from tests.cluster.etcdjson import put, wait_until
from tests.exporter.test_promtool import REFERENCE, _allowed_new_problem, promtool_problems
from tests.helpers import free_port, require_tool

pytestmark = pytest.mark.cluster


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), float("nan"))


def test_committed_and_applied_advance_by_at_least_the_puts(cluster3) -> None:
    before = {m.name: scrape(m.metrics_url) for m in cluster3.members}
    n = 50
    for i in range(n):
        assert "error" not in put(cluster3.members[i % 3].client_url, f"metric/{i}", "x")
    for m in cluster3.members:

        def advanced(m: Any = m) -> bool:
            now = scrape(m.metrics_url)
            return all(
                value(now, name) - value(before[m.name], name) >= n
                for name in (
                    "etcd_server_proposals_committed_total",
                    "etcd_server_proposals_applied_total",
                )
            )

        wait_until(advanced, timeout=15, what=f"committed/applied advance on {m.name}")
        puts = value(scrape(m.metrics_url), "etcd_mvcc_put_total")
        assert puts - value(before[m.name], "etcd_mvcc_put_total") >= n


def test_peer_round_trip_time_has_a_series_for_every_peer(cluster3) -> None:
    ids = {}
    for m in cluster3.members:
        with urllib.request.urlopen(m.client_url + "/v3/maintenance/status", data=b"{}") as r:
            ids[m.name] = f"{int(json.loads(r.read())['header']['member_id']):x}"
    for m in cluster3.members:
        peers = {ids[o.name] for o in cluster3.members if o.name != m.name}

        def has_rtt(m: Any = m, peers: set[str] = peers) -> bool:
            s = scrape(m.metrics_url)
            return all(
                value(s, "etcd_network_peer_round_trip_time_seconds_count", To=p) >= 1
                for p in peers
            )

        wait_until(has_rtt, timeout=15, what=f"RTT series for every peer of {m.name}")


def test_leader_loss_moves_has_leader_and_leader_changes(fresh_cluster) -> None:
    cluster = fresh_cluster(3)
    old = cluster.wait_leader()
    survivors = [m for m in cluster.members if m.name != old]
    watched, paused = survivors
    before = value(scrape(watched.metrics_url), "etcd_server_leader_changes_seen_total")
    assert value(scrape(watched.metrics_url), "etcd_server_has_leader") == 1
    # kill the leader and freeze one follower: the last member cannot elect anyone
    cluster.kill(old)
    cluster.pause(paused.name)
    wait_until(
        lambda: value(scrape(watched.metrics_url), "etcd_server_has_leader") == 0,
        timeout=15,
        what="has_leader drops to 0",
    )
    cluster.resume(paused.name)
    wait_until(
        lambda: value(scrape(watched.metrics_url), "etcd_server_has_leader") == 1,
        timeout=20,
        what="has_leader back to 1",
    )
    for m in survivors:
        after = value(scrape(m.metrics_url), "etcd_server_leader_changes_seen_total")
        assert after >= (before if m is watched else 1) + (1 if m is watched else 0)


def test_a_30ms_fsync_fault_shows_in_the_fsync_average(fresh_cluster) -> None:
    cluster = fresh_cluster(3, ["--experimental-wal-fsync-delay=30ms"])
    cluster.wait_leader()
    m = cluster.members[0]
    before = scrape(m.metrics_url)
    for i in range(20):
        assert "error" not in put(m.client_url, f"slow/{i}", "x", timeout=30)
    after = scrape(m.metrics_url)
    total = value(after, "etcd_disk_wal_fsync_duration_seconds_sum") - value(
        before, "etcd_disk_wal_fsync_duration_seconds_sum"
    )
    count = value(after, "etcd_disk_wal_fsync_duration_seconds_count") - value(
        before, "etcd_disk_wal_fsync_duration_seconds_count"
    )
    assert count >= 1
    assert total / count >= 0.030
    assert value(after, "raftmon_fault_wal_fsync_delay_seconds") == pytest.approx(0.03)


def test_promtool_check_metrics_finds_nothing_beyond_etcds_own_names(cluster3) -> None:
    promtool = require_tool("promtool")
    with urllib.request.urlopen(cluster3.members[0].metrics_url + "/metrics") as resp:
        text = resp.read().decode()
    reference_text = REFERENCE.read_text()
    etcd_problems = promtool_problems(promtool, reference_text)
    names = {line.split()[2] for line in reference_text.splitlines() if line.startswith("# TYPE ")}
    ours = promtool_problems(promtool, text)
    assert sorted(p for p in ours - etcd_problems if not _allowed_new_problem(p, names)) == []


# Families that only have series after something went wrong or a rare operation ran;
# the lab scenarios cover them.
ONLY_ON_EVENTS = {
    "etcd_debugging_server_alarms": "only while an alarm is raised (quota scenario)",
    "raftmon_fault_peer_delay_seconds": "only while a peer fault is set (lab)",
    "raftmon_fault_peer_drop": "only while a peer fault is set (lab)",
}


@pytest.mark.tools
def test_a_real_prometheus_sees_live_series_for_every_family(cluster3, tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    port = free_port()
    targets = [m.metrics_url.removeprefix("http://") for m in cluster3.members]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: etcd\n"
        f"    static_configs: [{{targets: {json.dumps(targets)}, labels: {{cluster: live}}}}]\n"
    )
    for i in range(30):  # give histograms, leases and compaction something to show
        put(cluster3.members[i % 3].client_url, f"live/{i}", "x")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def names_seen() -> set[str] | None:
            with urllib.request.urlopen(f"{api}/label/__name__/values", timeout=5) as resp:
                seen = set(json.loads(resp.read())["data"])
            return seen if "etcd_server_has_leader" in seen else None

        seen = wait_until(names_seen, timeout=30, interval=0.5, what="prometheus scrapes")
        time.sleep(2)  # a couple more scrapes so every member is in
        seen = names_seen() or set()
        missing = []
        for spec in CATALOG:
            if spec.name in ONLY_ON_EVENTS:
                continue
            candidates = {spec.name, spec.name + "_count", spec.name + "_total"}
            if not candidates & seen:
                missing.append(spec.name)
        assert missing == [], f"families without live series: {missing}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
