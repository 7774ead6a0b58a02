"""The exporter's metrics mean what etcd's mean, on a live 3-member cluster.

Values are read from each member's real /metrics (client and metrics listeners);
a real Prometheus then scrapes a loaded cluster and every family in the catalog
must have a live series above zero, except the ones listed below (with reasons)
that only exist while something goes wrong or may legitimately read zero.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.catalog import CATALOG, Kind, MetricSpec
from lab.children import spawn
from lab.cluster import LocalCluster
from tests.cluster.etcdjson import b64, call, get, put, wait_until
from tests.exporter.test_promtool import REFERENCE, _allowed_new_problem, promtool_problems
from tests.helpers import free_port, require_tool

pytestmark = pytest.mark.cluster


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), float("nan"))


def test_committed_and_applied_advance_by_at_least_the_puts(cluster3: LocalCluster) -> None:
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


def test_peer_round_trip_time_has_a_series_for_every_peer(cluster3: LocalCluster) -> None:
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


def test_leader_loss_moves_has_leader_and_leader_changes(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3)
    old = cluster.wait_leader()
    survivors = [m for m in cluster.members if m.name != old]
    watched, paused = survivors
    changes = "etcd_server_leader_changes_seen_total"
    before = {m.name: value(scrape(m.metrics_url), changes) for m in survivors}
    assert all(v >= 1 for v in before.values()), before  # the first election was seen
    assert value(scrape(watched.metrics_url), "etcd_server_has_leader") == 1
    # kill the leader and freeze one follower: the last member cannot elect anyone
    cluster.kill(old)
    cluster.pause(paused.name)
    wait_until(
        lambda: value(scrape(watched.metrics_url), "etcd_server_has_leader") == 0,
        timeout=15,
        what="has_leader drops to 0",
    )
    # no leader yet, so no new leader seen: the counter has not moved
    assert value(scrape(watched.metrics_url), changes) == before[watched.name]
    cluster.resume(paused.name)
    for m in survivors:
        wait_until(
            lambda m=m: value(scrape(m.metrics_url), "etcd_server_has_leader") == 1,
            timeout=20,
            what=f"has_leader back to 1 on {m.name}",
        )
    after = {m.name: value(scrape(m.metrics_url), changes) for m in survivors}
    assert all(after[n] >= before[n] + 1 for n in before), (before, after)


def test_a_30ms_fsync_fault_shows_in_the_fsync_average(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
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


def test_promtool_check_metrics_finds_nothing_beyond_etcds_own_names(
    cluster3: LocalCluster,
) -> None:
    promtool = require_tool("promtool")
    with urllib.request.urlopen(cluster3.members[0].metrics_url + "/metrics") as resp:
        text = resp.read().decode()
    reference_text = REFERENCE.read_text()
    etcd_problems = promtool_problems(promtool, reference_text)
    names = {line.split()[2] for line in reference_text.splitlines() if line.startswith("# TYPE ")}
    ours = promtool_problems(promtool, text)
    assert sorted(p for p in ours - etcd_problems if not _allowed_new_problem(p, names)) == []


class OpenWatch:
    """A watch stream held open in a thread; `lines` are the raw lines it received."""

    def __init__(self, url: str, body: bytes) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.conn.request("POST", "/v3/watch", body=body)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        self.sock = self.conn.sock  # kept by http.client: the chunked response stays open
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while line := self.resp.readline():
                self.lines.append(line)

    def events(self) -> int:
        return sum(len(json.loads(line)["result"].get("events", [])) for line in self.lines)

    def __enter__(self) -> OpenWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:  # wakes the reader: its readline sees the end
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.conn.close()


def keepalive(url: str, body: bytes) -> list[bytes]:
    """POST one streamed keep-alive body; return the raw lines answered."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", "/v3/lease/keepalive", body=body)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return [line for line in resp.read().splitlines(keepends=True) if line.strip()]
    finally:
        conn.close()


def grpc(method: str, service: str) -> dict[str, str]:
    return {"grpc_method": method, "grpc_service": service, "grpc_type": "bidi_stream"}


WATCH = grpc("Watch", "etcdserverpb.Watch")
KEEPALIVE = grpc("LeaseKeepAlive", "etcdserverpb.Lease")


def test_watch_and_keepalive_messages_and_bytes_are_counted_exactly(cluster3: LocalCluster) -> None:
    # Only stream traffic reaches `m`'s client listener between the two scrapes (the
    # writes go to another member, scrapes to the metrics listener), so every message
    # and byte `m` counts is one this test sent or received.
    m, writer = cluster3.members[1], cluster3.members[0]
    lease = call(writer.client_url, "/v3/lease/grant", {"TTL": "60"})["ID"]
    before = scrape(m.metrics_url)
    watch_body = json.dumps({"create_request": {"key": b64("sm/"), "range_end": b64("sm0")}})
    with OpenWatch(m.client_url, watch_body.encode()) as watch:
        wait_until(lambda: watch.lines, timeout=10, what="watch created")
        for i in range(3):
            put(writer.client_url, f"sm/{i}", "x")
        wait_until(lambda: watch.events() >= 3, timeout=10, what="3 watch events")
        watch_sent = list(watch.lines)
    ka_body = f'{{"ID":"{lease}"}}\n{{"ID":"{lease}"}}'.encode()  # two requests, one body
    ka_sent = keepalive(m.client_url, ka_body)
    assert len(ka_sent) == 2, ka_sent
    assert all(b'"TTL"' in line for line in ka_sent), ka_sent

    expected = {
        ("grpc_server_msg_received_total", tuple(sorted(WATCH.items()))): 1,
        ("grpc_server_msg_sent_total", tuple(sorted(WATCH.items()))): len(watch_sent),
        ("grpc_server_msg_received_total", tuple(sorted(KEEPALIVE.items()))): 2,
        ("grpc_server_msg_sent_total", tuple(sorted(KEEPALIVE.items()))): 2,
        ("etcd_network_client_grpc_received_bytes_total", ()): len(watch_body) + len(ka_body),
        ("etcd_network_client_grpc_sent_bytes_total", ()): sum(map(len, watch_sent + ka_sent)),
    }

    def deltas() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        now = scrape(m.metrics_url)
        return {key: now[key] - before[key] for key in expected}

    with contextlib.suppress(AssertionError):  # counted just after each write completes
        wait_until(lambda: deltas() == expected, timeout=10, what="stream counters")
    assert deltas() == expected


def test_client_listener_and_metrics_listener_serve_the_same_families(
    cluster3: LocalCluster,
) -> None:
    m = cluster3.member(cluster3.wait_leader())  # raftmon_raft_follower_match_index: leader only
    assert m.client_url != m.metrics_url
    families = {}
    for url in (m.client_url, m.metrics_url):
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = resp.read().decode()
        families[url] = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families[m.client_url] == families[m.metrics_url]
    # prometheus_client names a `x_total` counter family `x`
    exposed = {name.removesuffix("_total") for name in families[m.client_url]}
    expected = {spec.name.removesuffix("_total") for spec in CATALOG if not spec.only_with}
    expected -= set(ONLY_ON_EVENTS)  # (only_with: gated by a flag cluster3 does not set)
    assert expected - exposed == set()


# Families with no series at all unless something goes wrong; the lab scenarios cover them.
ONLY_ON_EVENTS = {
    "etcd_debugging_server_alarms": "only while an alarm is raised (quota scenario)",
}

_NO_SNAPSHOT = (
    "no Raft snapshot in this run: far fewer applied entries than --snapshot-count, and no"
    " member lags far enough to be sent one"
)
_NOTHING_FAILED = "counts failures or slowness; a healthy run may see none"
# Families whose series exist but may legitimately read 0 after the load below. Only
# their presence is asserted (plus the exact value where one is certain, below).
MAY_STAY_ZERO = {
    # snapshots (member-local Raft snapshots, and transfers to a lagging follower)
    "etcd_debugging_snap_save_total_duration_seconds": _NO_SNAPSHOT,
    "etcd_snap_fsync_duration_seconds": _NO_SNAPSHOT,
    "etcd_snap_db_fsync_duration_seconds": _NO_SNAPSHOT + " (fed when a .snap.db is received)",
    "etcd_snap_db_save_total_duration_seconds": _NO_SNAPSHOT + " (fed when one is received)",
    "etcd_disk_backend_snapshot_duration_seconds": _NO_SNAPSHOT + ", and no Snapshot RPC",
    "etcd_network_snapshot_send_success": _NO_SNAPSHOT,
    "etcd_network_snapshot_send_failures": _NO_SNAPSHOT,
    "etcd_network_snapshot_send_total_duration_seconds": _NO_SNAPSHOT,
    "etcd_network_snapshot_send_inflights_total": _NO_SNAPSHOT + " (a gauge while sending)",
    "etcd_network_snapshot_receive_success": _NO_SNAPSHOT,
    "etcd_network_snapshot_receive_failures": _NO_SNAPSHOT,
    "etcd_network_snapshot_receive_total_duration_seconds": _NO_SNAPSHOT,
    "etcd_network_snapshot_receive_inflights_total": _NO_SNAPSHOT + " (a gauge while receiving)",
    "etcd_server_snapshot_apply_in_progress_total": _NO_SNAPSHOT + " (1 while installing one)",
    # failures and slowness
    "etcd_server_health_failures": "every /health call below answers true",
    "etcd_server_heartbeat_send_failures_total": _NOTHING_FAILED + " (a late leader tick)",
    "etcd_server_proposals_failed_total": _NOTHING_FAILED,
    "etcd_server_read_indexes_failed_total": _NOTHING_FAILED,
    "etcd_server_slow_read_indexes_total": _NOTHING_FAILED,
    "etcd_server_slow_apply_total": _NOTHING_FAILED,
    "etcd_network_peer_sent_failures_total": _NOTHING_FAILED,
    "etcd_network_peer_received_failures_total": _NOTHING_FAILED,
    "etcd_network_disconnected_peers_total": _NOTHING_FAILED,
    "raftmon_raft_proposals_dropped_total": _NOTHING_FAILED,
    "raftmon_network_peer_refused_total": "no impostor dials a peer port in this run",
    "raftmon_raft_messages_dropped_total": "no stale-term or forged peer message in this run",
    "raftmon_server_proposals_sent_again_total": "no leader change with proposals in flight",
    "raftmon_server_apply_duplicates_skipped_total": "no proposal was sent again in this run",
    # gauges that read 0 in a healthy, idle-after-load cluster (values checked below)
    "etcd_server_proposals_pending": "every proposal has been applied when scraped",
    "etcd_disk_defrag_inflight": "1 only while the defrag runs; it finished (checked == 0)",
    "etcd_debugging_mvcc_pending_events_total": "the watcher keeps up: nothing queued",
    "etcd_debugging_mvcc_slow_watcher_total": "the watcher keeps up: none unsynced",
    "raftmon_fault_raft_ticks_paused": "no fault set (checked == 0)",
    "raftmon_fault_wal_fsync_delay_seconds": "no fault set (checked == 0)",
    "raftmon_fault_peer_delay_seconds": "no peer fault set (checked == 0)",
    "raftmon_fault_peer_drop": "no peer fault set (checked == 0)",
    # no learners; no HashKV
    "etcd_server_is_learner": "raftmon has no learners: always 0, by design (checked == 0)",
    "etcd_server_learner_promote_successes": "raftmon has no learners to promote",
    "etcd_mvcc_hash_rev_duration_seconds": (
        "HashKV is not on the gateway (etcd 3.4's /v3/maintenance/hash is Hash) and the "
        "corruption check is off in this run"
    ),
}


def load_the_cluster(cluster: Any, watch_key: str) -> None:
    """Puts, overwrites, ranges, a txn, a delete, leases (kept alive, expiring, revoked
    unknown), watch events, a compaction, a defrag, a store hash and /health on every member."""
    urls = [m.client_url for m in cluster.members]
    expiring = call(urls[0], "/v3/lease/grant", {"TTL": "2"})["ID"]  # expires during the run
    kept = call(urls[1], "/v3/lease/grant", {"TTL": "60"})["ID"]
    failed = call(urls[2], "/v3/lease/revoke", {"ID": "4242"})  # fails in apply
    assert failed.get("message") == "etcdserver: requested lease not found", failed
    assert "error" not in put(urls[0], watch_key + "leased", "x", lease=expiring)
    for i in range(30):  # 10 keys, each written 3 times: the compaction has revisions to drop
        assert "error" not in put(urls[i % 3], f"{watch_key}{i % 10}", f"v{i}")
    for url in urls:
        assert "error" not in get(url, watch_key, range_end=b64(watch_key[:-1] + "0"))
        assert "error" not in get(url, watch_key + "0", serializable=True)
    txn = {
        "compare": [{"key": b64("live-txn"), "target": "VERSION", "result": "EQUAL"}],
        "success": [{"request_put": {"key": b64("live-txn"), "value": b64("1")}}],
    }
    assert "error" not in call(urls[0], "/v3/kv/txn", txn)
    assert "error" not in call(urls[1], "/v3/kv/deleterange", {"key": b64(watch_key + "9")})
    assert len(keepalive(urls[2], f'{{"ID":"{kept}"}}'.encode())) == 1
    rev = call(urls[0], "/v3/maintenance/status", {})["header"]["revision"]
    assert "error" not in call(urls[0], "/v3/kv/compaction", {"revision": rev})
    assert call(urls[1], "/v3/maintenance/defragment", {}) is not None
    assert "hash" in call(urls[2], "/v3/maintenance/hash", {})  # etcd_mvcc_hash_duration_seconds
    for url in urls:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            assert json.loads(resp.read())["health"] == "true"


@pytest.mark.tools
def test_a_real_prometheus_sees_live_nonzero_series_for_every_fed_family(
    cluster3: LocalCluster, tmp_path: Path
) -> None:
    prometheus = require_tool("prometheus")
    port = free_port()
    targets = [m.metrics_url.removeprefix("http://") for m in cluster3.members]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: etcd\n"
        f"    static_configs: [{{targets: {json.dumps(targets)}, labels: {{cluster: live}}}}]\n"
    )
    watched = cluster3.members[1]
    watch_body = json.dumps({"create_request": {"key": b64("live/"), "range_end": b64("live0")}})
    proc = spawn(
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

    def query(expr: str) -> list[float]:
        url = f"{api}/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as resp:
            result = json.loads(resp.read())["data"]["result"]
        return [float(r["value"][1]) for r in result]

    def series(spec: MetricSpec) -> str:
        return spec.name + "_count" if spec.kind is Kind.HISTOGRAM else spec.name

    def unfed() -> list[str]:
        """Fed families with no series above 0 (gauges, counters, histogram counts)."""
        fed = [s for s in CATALOG if s.name not in ONLY_ON_EVENTS and s.name not in MAY_STAY_ZERO]
        fed = [s for s in fed if not s.only_with]  # tests/exporter/test_handling_live.py
        return [s.name for s in fed if not any(v > 0 for v in query(series(s)))]

    try:
        with OpenWatch(watched.client_url, watch_body.encode()) as watch:
            wait_until(lambda: watch.lines, timeout=10, what="watch created")
            load_the_cluster(cluster3, "live/")
            wait_until(lambda: watch.events() >= 30, timeout=10, what="watch events")
            wait_until(
                lambda: query("sum(up)") == [3] and len(query("etcd_server_has_leader")) == 3,
                timeout=30,
                what="every member scraped",
            )
            # the TTL-2 lease expires on the leader's housekeeping; then one more scrape
            wait_until(
                lambda: any(v > 0 for v in query("etcd_debugging_server_lease_expired_total")),
                timeout=20,
                what="a lease expiry scraped",
            )
            with contextlib.suppress(AssertionError):
                wait_until(lambda: not unfed(), timeout=15, interval=1, what="every family fed")
            assert unfed() == [], "fed families with no non-zero series"
            present = [s.name for s in CATALOG if s.name in MAY_STAY_ZERO and not query(series(s))]
            assert present == [], "families without any series"

            # gauges: present and plausible
            assert query("etcd_server_has_leader") == [1, 1, 1]
            assert query("sum(etcd_server_is_leader)") == [1]
            assert query('sum(raftmon_raft_role{role="leader"})') == [1]
            assert query("etcd_server_is_learner") == [0, 0, 0]
            assert query("etcd_disk_defrag_inflight") == [0, 0, 0]
            assert query("raftmon_fault_raft_ticks_paused") == [0, 0, 0]
            assert query("raftmon_fault_wal_fsync_delay_seconds") == [0, 0, 0]
            assert query("raftmon_fault_peer_delay_seconds") == [0] * 6
            assert query("raftmon_fault_peer_drop") == [0] * 6
            assert query("etcd_network_active_peers") == [1] * 6  # every member, both peers
            assert query("min(etcd_debugging_mvcc_compact_revision)")[0] > 0
            assert max(query("etcd_debugging_mvcc_watch_stream_total")) >= 1
            assert max(query("etcd_debugging_mvcc_watcher_total")) >= 1
            # streams, and the failure side of the apply histogram, on every member
            for method in ("Watch", "LeaseKeepAlive"):
                for family in ("grpc_server_msg_received_total", "grpc_server_msg_sent_total"):
                    assert max(query(f'{family}{{grpc_method="{method}"}}')) > 0, (method, family)
            failed_revokes = query(
                'etcd_server_apply_duration_seconds_count{op="LeaseRevoke",success="false"}'
            )
            assert len(failed_revokes) == 3, failed_revokes
            assert min(failed_revokes) >= 1, failed_revokes
    finally:
        proc.terminate()
        proc.wait(timeout=10)
