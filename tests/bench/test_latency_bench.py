"""Issue 17's single-client put latency: raftmon against etcd 3.4, and against an earlier raftmon.

The same `raftmon load --protocol grpc` put command as tests/bench/test_grpc_bench.py (8-byte
keys, 256-byte values, one client sent to the leader; then 64 clients over 16 channels)
against a 3-member raftmon cluster of this checkout and a 3-member Debian etcd-server
cluster; `RAFTMON_LATENCY_BASELINE=<checkout>` adds a 3-member cluster of that checkout's
code (its `.venv`, started with its own `python -m lab cluster`), so a before/after
comparison shares the box's load. Rounds rotate who goes first; medians are printed with
the servers' CPU per put and the load average at each run. Numbers only: it asserts that
the runs completed, never a timing. On a shared box, run one benchmark at a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.bench.results import record
from tests.bench.sides import raftmon_and_etcd
from tests.bench.test_grpc_bench import grpc_load, median
from tests.helpers import require_tool

pytestmark = pytest.mark.bench

SECONDS = os.environ.get("RAFTMON_LATENCY_BENCH_SECONDS", "8")
ROUNDS = int(os.environ.get("RAFTMON_LATENCY_ROUNDS", "4"))  # one client
ROUNDS_64 = int(os.environ.get("RAFTMON_LATENCY_ROUNDS_64", "2"))  # 64 clients: throughput
BASELINE = os.environ.get("RAFTMON_LATENCY_BASELINE", "")  # another checkout: "before"


@contextmanager
def baseline_cluster(checkout: str, data_dir: Path) -> Iterator[tuple[list[str], list[int]]]:
    """A 3-member cluster of `checkout`'s code: (endpoints, member pids)."""
    python = str(Path(checkout) / ".venv" / "bin" / "python")
    cmd = [python, "-m", "lab", "cluster", "--size=3", f"--data-dir={data_dir}", "--quiet"]
    proc = subprocess.Popen(
        cmd, cwd=checkout, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for _ in range(200):  # its start-up lines, then "cluster of 3 ready; leader ..."
            line = proc.stdout.readline()
            if "ready; leader" in line or not line:
                break
        info = json.loads((data_dir / "endpoints.json").read_text())
        assert "ready; leader" in line, f"{' '.join(cmd)} did not start: {line!r}"
        yield info["endpoints"], [m["pid"] for m in info["members"]]
    finally:
        if proc.stdin is not None and proc.poll() is None:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def one_run(endpoints: list[str], pids: list[int], clients: int) -> dict[str, Any]:
    flags = [f"--duration={SECONDS}"] + (["--target-leader=true"] if clients == 1 else [])
    load_average = os.getloadavg()[0]
    report = grpc_load(endpoints, pids, "put", clients, flags)
    report["load_average"] = load_average
    return report


RUNS = (ROUNDS + ROUNDS_64) * (3 if BASELINE else 2)


@pytest.mark.timeout(300 + RUNS * (float(SECONDS) + 15))
def test_single_client_put_latency_against_etcd(tmp_path: Path) -> None:
    etcd = require_tool("etcd")
    with raftmon_and_etcd(tmp_path, etcd) as sides:
        if BASELINE:
            with baseline_cluster(BASELINE, tmp_path / "baseline") as before:
                time.sleep(1.0)
                sides["baseline"] = before
                runs = _rounds(sides)
        else:
            runs = _rounds(sides)
    _print(runs)
    record(
        "latency",
        {"seconds": SECONDS, "rounds": ROUNDS, "rounds_64": ROUNDS_64},
        {
            side: {
                "p50_seconds_x1": median(runs[side, 1], "p50"),
                "puts_per_second_x64": median(runs[side, 64], "rps") if runs[side, 64] else None,
            }
            for side in ("raftmon", "etcd", "baseline")
            if runs.get((side, 1))
        },
    )
    assert all(r["succeeded"] > 0 for v in runs.values() for r in v)


def _rounds(
    sides: dict[str, tuple[list[str], list[int]]],
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {
        (side, clients): [] for side in sides for clients in (1, 64)
    }
    names = list(sides)
    for clients, rounds in ((1, ROUNDS), (64, ROUNDS_64)):
        for i in range(rounds):
            for side in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
                runs[side, clients].append(one_run(*sides[side], clients))
    return runs


def _print(runs: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    print(f"\nputs over gRPC, medians of interleaved {SECONDS} s runs")
    print(
        f"{'run':<16} {'n':>2} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'server CPU µs/put':>18} {'load avg':>8}"
    )
    for (side, clients), v in runs.items():
        if not v:
            continue
        print(
            f"{side + ' x' + str(clients):<16} {len(v):>2} {median(v, 'rps'):>7.0f} "
            f"{1e3 * median(v, 'p50'):>7.3f} {1e3 * median(v, 'p99'):>7.3f} "
            f"{median(v, 'server_cpu'):>18.0f} "
            f"{statistics.median(r['load_average'] for r in v):>8.2f}"
        )
    for side in ("raftmon", "baseline"):
        if not runs.get((side, 1)):
            continue
        p50 = median(runs[side, 1], "p50") / median(runs["etcd", 1], "p50")
        line = f"{side}/etcd: single-client p50 {p50:.3f}x"
        if runs[side, 64]:
            rps = median(runs[side, 64], "rps") / median(runs["etcd", 64], "rps")
            line += f", 64-client throughput {rps:.3f}x"
        print(line)
