"""`make bench`: raftmon vs real etcd 3.4, same client, same machine, back to back.

64 concurrent clients of puts (8-byte keys, 256-byte values) against a 3-member
raftmon cluster, then against a 3-member Debian etcd-server cluster, with the
same `raftmon load` command; then one client against each one's leader
(`--target-leader`) for single-request latency. Prints throughput, percentiles
and raftmon/etcd ratios. A benchmark: it asserts only that the runs completed,
never a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.cluster import LocalCluster
from tests.helpers import require_tool
from tests.loadgen.etcd_cluster import EtcdCluster

pytestmark = pytest.mark.bench

DURATION = os.environ.get("RAFTMON_BENCH_SECONDS", "10")


def load(endpoints: list[str], clients: int, conns: int, out: Path, *flags: str) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "node", "load",
        f"--endpoints={','.join(endpoints)}",
        f"--clients={clients}", f"--conns={conns}",
        f"--duration={DURATION}", "--no-progress=true", "--json=true", *flags,
        "put", "--key-size=8", "--val-size=256", "--key-space-size=100000",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    out.write_text(done.stdout)
    return report


def row(name: str, r: dict[str, Any]) -> str:
    p = r["latency_seconds"]["percentiles"]
    pct = {float(k): v for k, v in p.items()} if isinstance(p, dict) else dict(p)
    return (
        f"{name:<22} {r['requests_per_second']:>10.0f} {1000 * pct[50.0]:>9.2f} "
        f"{1000 * pct[99.0]:>9.2f} {r['failed']:>7}"
    )


def test_raftmon_against_real_etcd_puts(tmp_path: Path) -> None:
    etcd = require_tool("etcd")
    results: dict[str, dict[str, Any]] = {}
    with LocalCluster(tmp_path / "raftmon", 3) as cluster:
        cluster.wait_leader()
        results["raftmon 64 clients"] = load(cluster.endpoints, 64, 16, tmp_path / "r64.json")
        results["raftmon 1 client"] = load(
            cluster.endpoints, 1, 1, tmp_path / "r1.json", "--target-leader=true"
        )
    real = EtcdCluster(etcd, tmp_path / "etcd", 3)
    real.start()
    try:
        results["etcd 64 clients"] = load(real.endpoints, 64, 16, tmp_path / "e64.json")
        results["etcd 1 client"] = load(
            real.endpoints, 1, 1, tmp_path / "e1.json", "--target-leader=true"
        )
    finally:
        real.stop()
    print()
    print(f"{'run':<22} {'puts/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'failed':>7}")
    for name, r in results.items():
        print(row(name, r))
    thr = results["raftmon 64 clients"]["requests_per_second"] / max(
        1e-9, results["etcd 64 clients"]["requests_per_second"]
    )
    p50 = lambda r: {float(k): v for k, v in r["latency_seconds"]["percentiles"].items()}[50.0]  # noqa: E731
    lat = p50(results["raftmon 1 client"]) / max(1e-9, p50(results["etcd 1 client"]))
    print(f"throughput ratio raftmon/etcd at 64 clients: {thr:.2f}x (target >= 1.0x)")
    print(f"single-client p50 ratio raftmon/etcd: {lat:.2f}x (target <= 1.5x)")
    for r in results.values():
        assert r["succeeded"] > 0
