"""`make bench`: raftmon against real etcd 3.4 over gRPC, the protocol of etcd's `benchmark`.

Puts (8-byte keys, 256-byte values) and linearizable gets (a prefilled space of 1,000
keys), each at 64 clients over 16 channels and at 1 client sent to the leader
(`--target-leader`), against a 3-member raftmon cluster and a 3-member Debian
etcd-server cluster, with the same `raftmon load --protocol grpc` command, in rounds that
alternate who goes first (the median of each side is reported). It prints the issue's
ratios: throughput raftmon/etcd at 64 clients and single-client p50 raftmon/etcd, and
beside every run the servers' CPU per request and the load tool's own. A benchmark: it
asserts only that the runs completed, never a timing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bench.sides import raftmon_and_etcd
from tests.bench.test_cluster_bench import cpu_seconds, p
from tests.helpers import require_tool

pytestmark = pytest.mark.bench

DURATION = os.environ.get("RAFTMON_BENCH_SECONDS", "8")
# Even, so each side goes first as often as second; 2 keeps 16 runs of each side short.
ROUNDS = int(os.environ.get("RAFTMON_GRPC_BENCH_ROUNDS", "2"))
KEY_SPACE = {"put": 100_000, "range": 1_000}
# (workload, clients): the four measurements.
CASES = (("put", 64), ("put", 1), ("range", 64), ("range", 1))


def grpc_load(
    endpoints: list[str],
    pids: list[int],
    workload: str,
    clients: int,
    flags: list[str],
    workload_flags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One `raftmon load --protocol grpc` run; its JSON report plus the servers' CPU."""
    cmd = [
        sys.executable, "-m", "lab", "load", "--protocol=grpc",
        f"--endpoints={','.join(endpoints)}",
        f"--clients={clients}", f"--conns={min(clients, 16)}",
        "--no-progress=true", "--json=true", *flags,
        workload, "--key-size=8", "--val-size=256", f"--key-space-size={KEY_SPACE[workload]}",
        *workload_flags,
    ]  # fmt: skip
    os.sync()  # the previous run's dirty pages are written now, not during this run's fsyncs
    time.sleep(1.0)
    before = cpu_seconds(pids)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    report["server_cpu_us"] = 1e6 * (cpu_seconds(pids) - before) / max(1, report["succeeded"])
    return report


def measure(endpoints: list[str], pids: list[int], workload: str, clients: int) -> dict[str, Any]:
    flags = [f"--duration={DURATION}"]
    if clients == 1:
        flags.append("--target-leader=true")  # single-request latency: no forwarding hop
    return grpc_load(endpoints, pids, workload, clients, flags)


def median(runs: list[dict[str, Any]], figure: str) -> float:
    picks: dict[str, Callable[[dict[str, Any]], float]] = {
        "rps": lambda r: r["requests_per_second"],
        "p50": lambda r: p(r, 50.0),
        "p99": lambda r: p(r, 99.0),
        "server_cpu": lambda r: r["server_cpu_us"],
        "client_cpu": lambda r: r["client_cpu_us_per_request"],
    }
    pick = picks[figure]
    return float(statistics.median(pick(r) for r in runs))


def test_raftmon_against_real_etcd_over_grpc(tmp_path: Path) -> None:
    etcd = require_tool("etcd")
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {
        (side, workload, clients): [] for side in "re" for workload, clients in CASES
    }
    with raftmon_and_etcd(tmp_path, etcd) as named:
        sides = {"r": named["raftmon"], "e": named["etcd"]}
        for endpoints, pids in sides.values():  # the gets' keys, written once, not timed
            total = [f"--total={KEY_SPACE['range']}"]
            grpc_load(endpoints, pids, "range", 16, total, ("--prefill=true",))
        for i in range(ROUNDS):
            # Alternate who goes first, so drift in machine load hits both sides alike.
            order = "re" if i % 2 == 0 else "er"
            for workload, clients in CASES:
                for side in order:
                    endpoints, pids = sides[side]
                    runs[side, workload, clients].append(
                        measure(endpoints, pids, workload, clients)
                    )

    print(f"\ngRPC, median of {ROUNDS} interleaved rounds of {DURATION} s each")
    print(
        f"{'run':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU µs/req':>18} {'load CPU µs/req':>16} {'failed':>7}"
    )
    for (side, workload, clients), v in runs.items():
        name = f"{'raftmon' if side == 'r' else 'etcd'} {workload} x{clients}"
        print(
            f"{name:<24} {median(v, 'rps'):>8.0f} {1e3 * median(v, 'p50'):>8.2f} "
            f"{1e3 * median(v, 'p99'):>8.2f} {median(v, 'server_cpu'):>18.0f} "
            f"{median(v, 'client_cpu'):>16.0f} {sum(r['failed'] for r in v):>7}"
        )
    for workload in ("put", "range"):
        ours64, theirs64 = runs["r", workload, 64], runs["e", workload, 64]
        ours1, theirs1 = runs["r", workload, 1], runs["e", workload, 1]
        print(
            f"{workload}: throughput ratio raftmon/etcd, 64 clients: "
            f"{median(ours64, 'rps') / median(theirs64, 'rps'):.2f}x; "
            f"single-client p50 ratio raftmon/etcd: "
            f"{median(ours1, 'p50') / median(theirs1, 'p50'):.2f}x"
        )
    for v in runs.values():
        assert all(r["succeeded"] > 0 for r in v)
