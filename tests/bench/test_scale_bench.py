"""`make bench`, scale run: raftmon vs real etcd 3.4 at 10k / 100k (/ 500k) keys of 1 KiB.

For each size, each side in turn on the same machine with the same load tool
(`raftmon load --protocol=grpc`), 3 members, etcd's default timings, the same
--snapshot-count and --auto-compaction flags:

1. load: the key space written twice (the second pass leaves one old revision per key);
2. compaction + defrag: while one client puts at a steady rate, compact to the
   current revision, then defragment every member in turn (as `etcdctl defrag
   --cluster`); counted: leader changes (etcd_server_leader_changes_seen_total,
   summed over members) and failed puts during the window;
3. catch-up: a follower is killed (SIGKILL), more than --snapshot-count +
   5000 entries are written, and the time from its restart to serving the
   leader's revision is measured; it must catch up by a snapshot on both sides
   (etcd 3.4 cannot take back a wiped member under the same id without member
   remove/add, so the follower lags instead of losing its disk);
4. soak: puts at 64 clients for RAFTMON_SCALE_SOAK_SECONDS with auto compaction on;
   counted: throughput, failed puts, leader changes.

Also printed: the bytes in each member's snap directory besides the live database
(raftmon's snapshots are markers, etcd's are small files). Sizes come from
RAFTMON_SCALE_KEYS ("10000,100000" by default; "500000" when asked). A benchmark:
it asserts only that the runs completed, never a timing; the ratios are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.members import ProcessCluster
from tests.cluster.etcdjson import b64, call, put
from tests.helpers import require_tool

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

SIZES = [int(s) for s in os.environ.get("RAFTMON_SCALE_KEYS", "10000,100000").split(",") if s]
SOAK_SECONDS = int(os.environ.get("RAFTMON_SCALE_SOAK_SECONDS", "60"))
VALUE_BYTES = 1024
SNAPSHOT_COUNT = 10_000
CATCHUP_ENTRIES = 5_000  # etcd 3.4's fixed snapshot catch-up entries; raftmon's default
FLAGS = [
    f"--snapshot-count={SNAPSHOT_COUNT}",
    "--auto-compaction-mode=revision",
    "--auto-compaction-retention=10000",
    "--quota-backend-bytes=8589934592",  # 8 GiB: 500k keys written twice fit
]
STEP_TIMEOUT = 900.0  # seconds: bound on every wait of one step


def _load(endpoints: list[str], *args: str) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "lab", "load", "--protocol=grpc",
        f"--endpoints={','.join(endpoints)}", "--no-progress", "--json", *args,
    ]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT + 60, check=True
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _put_keys(endpoints: list[str], keys: int, prefix: str, clients: int = 32) -> dict[str, Any]:
    return _load(
        endpoints,
        f"--clients={clients}",
        f"--conns={min(clients, 16)}",
        f"--total={keys}",
        "put",
        "--key-size=12",
        f"--val-size={VALUE_BYTES}",
        f"--key-space-size={keys}",
        "--sequential-keys",
        f"--key-prefix={prefix}",
    )


def _metric_sum(urls: list[str], name: str) -> float:
    total = 0.0
    for url in urls:
        try:
            with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            continue  # a member that is down counts nothing
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def _metrics_urls(cluster: ProcessCluster[Any]) -> list[str]:
    return [getattr(m, "metrics_url", m.client_url) for m in cluster.members]


def _revision(url: str, *, serializable: bool) -> int:
    resp = call(url, "/v3/kv/range", {"key": b64("\0"), "serializable": serializable}, 10)
    return int(resp["header"]["revision"])


def _snap_bytes(cluster: ProcessCluster[Any]) -> int:
    """Bytes in the members' snap directories besides the live database files."""
    total = 0
    for m in cluster.members:
        snap = Path(m.data_dir) / "member" / "snap"
        for path in snap.rglob("*") if snap.is_dir() else []:
            if path.is_file() and path.name not in ("db", "db-wal", "db-shm"):
                total += path.stat().st_size
    return total


def _leader_url(cluster: ProcessCluster[Any]) -> tuple[str, str]:
    name = cluster.wait_leader(timeout=60)
    return name, cluster.member(name).client_url


def _run_side(cluster: LocalCluster | EtcdCluster, keys: int) -> dict[str, float]:
    out: dict[str, float] = {}
    endpoints = cluster.endpoints
    metrics = _metrics_urls(cluster)
    # 1. load, twice over the key space
    started = time.monotonic()
    first = _put_keys(endpoints, keys, "scale/")
    second = _put_keys(endpoints, keys, "scale/")
    out["load_puts_per_s"] = 2 * keys / (time.monotonic() - started)
    out["load_failed"] = float(first["failed"] + second["failed"])
    # 2. compaction + defrag while one client keeps putting (its failures are counted)
    changes_before = _metric_sum(metrics, "etcd_server_leader_changes_seen_total")
    stop = threading.Event()
    tally = {"ok": 0, "failed": 0}

    def trickle() -> None:
        for i in range(10_000_000):  # bounded; stopped by `stop` long before
            if stop.is_set():
                return
            try:
                resp = put(endpoints[i % len(endpoints)], f"trickle/{i % 1000}", "x", timeout=10)
                tally["failed" if "error" in resp else "ok"] += 1
            except (OSError, ValueError):
                tally["failed"] += 1

    writer = threading.Thread(target=trickle, daemon=True)
    window_started = time.monotonic()
    writer.start()
    try:
        time.sleep(2.0)
        _, leader_url = _leader_url(cluster)
        rev = _revision(leader_url, serializable=False)
        call(leader_url, "/v3/kv/compaction", {"revision": str(rev), "physical": True}, 300)
        time.sleep(5.0)  # a compaction that runs in the background gets its batches going
        for m in cluster.members:
            call(m.client_url, "/v3/maintenance/defragment", {}, STEP_TIMEOUT)
        time.sleep(2.0)
    finally:
        stop.set()
        writer.join(30)
    out["compact_defrag_seconds"] = time.monotonic() - window_started
    out["compact_defrag_leader_changes"] = (
        _metric_sum(metrics, "etcd_server_leader_changes_seen_total") - changes_before
    )
    out["compact_defrag_puts_ok"] = float(tally["ok"])
    out["compact_defrag_puts_failed"] = float(tally["failed"])
    # 3. catch-up of a lagging follower, by snapshot
    leader, leader_url = _leader_url(cluster)
    follower = next(m.name for m in cluster.members if m.name != leader)
    cluster.kill(follower)
    _put_keys([leader_url], SNAPSHOT_COUNT + CATCHUP_ENTRIES + 2000, "lag/", clients=16)
    target = _revision(leader_url, serializable=False)
    started = time.monotonic()
    cluster.restart(follower, wait=False)
    url = cluster.member(follower).client_url
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if _revision(url, serializable=True) >= target:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    else:
        raise AssertionError(f"{follower} did not catch up to revision {target}")
    out["catchup_seconds"] = time.monotonic() - started
    # 4. soak with auto compaction
    changes_before = _metric_sum(metrics, "etcd_server_leader_changes_seen_total")
    soak = _load(endpoints, "--clients=64", "--conns=16", f"--duration={SOAK_SECONDS}s",
                 "put", "--key-size=12", f"--val-size={VALUE_BYTES}",
                 f"--key-space-size={keys}", "--key-prefix=scale/")  # fmt: skip
    out["soak_puts_per_s"] = float(soak["requests_per_second"])
    out["soak_failed"] = float(soak["failed"])
    out["soak_leader_changes"] = (
        _metric_sum(metrics, "etcd_server_leader_changes_seen_total") - changes_before
    )
    out["snap_dir_bytes"] = float(_snap_bytes(cluster))
    return out


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("1.00x" if a == b else "inf")


@pytest.mark.parametrize("keys", SIZES)
def test_scale_raftmon_against_real_etcd(tmp_path: Path, keys: int) -> None:
    etcd = require_tool("etcd")
    results: dict[str, dict[str, float]] = {}
    ours = LocalCluster(tmp_path / "raftmon", 3, extra_args=FLAGS, fault_injection=False)
    theirs = EtcdCluster(etcd, tmp_path / "etcd", 3, extra_args=FLAGS)
    sides: dict[str, LocalCluster | EtcdCluster] = {"raftmon": ours, "etcd": theirs}
    for name, cluster in sides.items():
        cluster.start()
        try:
            cluster.wait_leader(timeout=60)
            results[name] = _run_side(cluster, keys)
            print(f"\n{name} at {keys} keys: {results[name]}", flush=True)
        finally:
            cluster.stop()
    r, e = results["raftmon"], results["etcd"]
    print(f"\nscale run: {keys} keys of {VALUE_BYTES} B, 3 members each, soak {SOAK_SECONDS} s")
    print(f"{'measure':<32} {'raftmon':>12} {'etcd':>12} {'ratio':>8}")
    for key in r:
        print(f"{key:<32} {r[key]:>12.2f} {e[key]:>12.2f} {_ratio(r[key], e[key]):>8}")
    assert r["load_puts_per_s"] > 0
    assert e["load_puts_per_s"] > 0
