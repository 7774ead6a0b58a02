"""What the load generator itself costs (`make bench`), over HTTP and gRPC.

`test_bench_generator_cpu_per_request_against_real_clusters`: the generator's own CPU per
request (issue 17's goal: <= 100 µs) for puts and linearizable ranges at 1 and 64 clients,
over both protocols, against a real 3-member etcd 3.4 and a 3-member raftmon cluster, in
one run (throughput ratios raftmon/etcd beside). `RAFTMON_LOADGEN_BASELINE=<checkout>`
adds the same runs by another checkout's generator (its `.venv`, its code), interleaved
with ours, so a before/after comparison shares the box's load.

`test_bench_generator_requests_per_second`: how many requests/s one load worker can
generate.

The endpoint is a trivial fake (`tests.loadgen.fake_etcd` over HTTP,
`tests.loadgen.fake_etcd_grpc` over gRPC: a fixed put answer) in a process of its own,
so the figure is the generator's ceiling, not a server's: a cluster slower than this
is measured faithfully, a faster one needs `--workers`. Each line also prints the
generator's own CPU per request. NB: the gRPC fake is grpcio's asyncio server, whose
per-call Python cost (~3,000-4,000 calls/s on one of these cores) is the limit of its
lines, so they are a floor for the generator's gRPC ceiling, and its CPU per request is
that of a client often waiting (fewer calls share each wake-up than against etcd).
Numbers only: nothing here asserts a timing (2 shared cores are noisy; the fake
server takes one of them).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.children import spawn
from tests.bench.results import record
from tests.bench.sides import raftmon_and_etcd
from tests.bench.test_cluster_bench import cpu_seconds, p
from tests.helpers import free_port, require_tool
from tests.loadgen.conftest import run_load

pytestmark = pytest.mark.bench

TOTAL = 30_000


FAKES = {"http": "tests.loadgen.fake_etcd", "grpc": "tests.loadgen.fake_etcd_grpc"}


@pytest.fixture(scope="module", params=sorted(FAKES))
def trivial_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(protocol, endpoint) of a fake serving that protocol."""
    port = free_port()
    proc = spawn([sys.executable, "-m", FAKES[request.param], str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("fake endpoint did not start")
        yield request.param, f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("workers", "clients", "conns"),
    [(1, 16, 4), (1, 64, 8), (1, 256, 16), (2, 64, 8)],
)
def test_bench_generator_requests_per_second(
    trivial_endpoint: tuple[str, str], workers: int, clients: int, conns: int
) -> None:
    protocol, endpoint = trivial_endpoint
    code, report = run_load(
        [
            f"--protocol={protocol}",
            f"--endpoints={endpoint}",
            f"--workers={workers}",
            f"--clients={clients}",
            f"--conns={conns}",
            "put",
            f"--total={TOTAL}",
            "--key-space-size=1000",
        ]
    )
    assert code == 0
    assert report["succeeded"] == TOTAL
    p = report["latency_seconds"]["percentiles"]
    print(
        f"\nloadgen {protocol} workers={workers} clients={clients} conns={conns}: "
        f"{report['requests_per_second']:.0f} req/s "
        f"(p50 {p['50'] * 1e3:.2f} ms, p99 {p['99'] * 1e3:.2f} ms, {TOTAL} puts, "
        f"generator CPU {report['client_cpu_us_per_request']:.0f} µs/request)"
    )


# -- the generator's CPU per request against real clusters ------------------------------
SECONDS = os.environ.get("RAFTMON_LOADGEN_BENCH_SECONDS", "5")
ROUNDS = int(os.environ.get("RAFTMON_LOADGEN_BENCH_ROUNDS", "1"))
BASELINE = os.environ.get("RAFTMON_LOADGEN_BASELINE", "")  # another checkout: "before"
RANGE_KEYS = 1_000
CASES = (("put", 64), ("put", 1), ("range", 64), ("range", 1))


def generator(version: str) -> tuple[list[str], str]:
    """(interpreter command, working directory) of the generator `version` names."""
    if version == "ours":
        return [sys.executable], str(Path(__file__).resolve().parents[2])
    return [str(Path(BASELINE) / ".venv" / "bin" / "python")], BASELINE


def load_run(
    version: str,
    endpoints: list[str],
    pids: list[int],
    protocol: str,
    workload: str,
    clients: int,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One `python -m loadgen` run of `version`'s generator; its JSON report + server CPU."""
    python, cwd = generator(version)
    cmd = [
        *python, "-m", "loadgen", f"--protocol={protocol}",
        f"--endpoints={','.join(endpoints)}",
        f"--clients={clients}", f"--conns={min(clients, 16)}",
        "--no-progress", "--json",
        *(["--target-leader"] if clients == 1 else []),  # one client: no forwarding hop
        *(extra or (f"--duration={SECONDS}s",)),
        workload, "--val-size=256",
        f"--key-space-size={RANGE_KEYS if workload == 'range' else 100_000}",
    ]  # fmt: skip
    before = cpu_seconds(pids)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    report["server_cpu_us"] = 1e6 * (cpu_seconds(pids) - before) / max(1, report["succeeded"])
    return report


# Every run: its seconds plus ~5 s of start, set-up and pause; both sides, protocols, cases.
RUNS_PER_ROUND = 2 * 2 * len(CASES) * (2 if BASELINE else 1)


@pytest.mark.timeout(300 + ROUNDS * RUNS_PER_ROUND * (float(SECONDS) + 10))
def test_bench_generator_cpu_per_request_against_real_clusters(tmp_path: Path) -> None:
    etcd = require_tool("etcd")
    versions = ["ours", *(["baseline"] if BASELINE else [])]
    runs: dict[tuple[str, str, str, str, int], list[dict[str, Any]]] = {}
    with raftmon_and_etcd(tmp_path, etcd) as sides:
        for endpoints, pids in sides.values():  # the ranges' keys, written once
            load_run("ours", endpoints, pids, "grpc", "range", 16, ("--total=1000",))
        for i in range(ROUNDS):
            for protocol in ("http", "grpc"):
                for workload, clients in CASES:
                    # Alternate who goes first, so drift in load hits every side alike.
                    order = list(sides) if i % 2 == 0 else list(reversed(sides))
                    for side in order:
                        for version in versions if i % 2 == 0 else reversed(versions):
                            endpoints, pids = sides[side]
                            runs.setdefault(
                                (version, side, protocol, workload, clients), []
                            ).append(
                                load_run(version, endpoints, pids, protocol, workload, clients)
                            )

    def med(v: list[dict[str, Any]], pick: str) -> float:
        figures = {
            "rps": [r["requests_per_second"] for r in v],
            "p50": [p(r, 50.0) * 1e3 for r in v],
            "cpu": [r["client_cpu_us_per_request"] for r in v],
            "server": [r["server_cpu_us"] for r in v],
        }[pick]
        return float(statistics.median(figures))

    print(f"\nload generator CPU per request, median of {ROUNDS} round(s) of {SECONDS} s")
    print(
        f"{'generator':<9} {'server':<8} {'protocol':<8} {'run':<10} {'req/s':>7} "
        f"{'p50 ms':>7} {'load CPU µs/req':>16} {'server CPU µs/req':>18} {'failed':>6}"
    )
    for (version, side, protocol, workload, clients), v in sorted(runs.items()):
        print(
            f"{version:<9} {side:<8} {protocol:<8} {f'{workload} x{clients}':<10} "
            f"{med(v, 'rps'):>7.0f} {med(v, 'p50'):>7.2f} {med(v, 'cpu'):>16.0f} "
            f"{med(v, 'server'):>18.0f} {sum(r['failed'] for r in v):>6}"
        )
    for version in versions:
        for protocol in ("http", "grpc"):
            for workload, clients in CASES:
                r = runs[version, "raftmon", protocol, workload, clients]
                e = runs[version, "etcd", protocol, workload, clients]
                print(
                    f"{version} {protocol} {workload} x{clients}: throughput raftmon/etcd "
                    f"{med(r, 'rps') / med(e, 'rps'):.2f}x, load CPU µs/req raftmon "
                    f"{med(r, 'cpu'):.0f} · etcd {med(e, 'cpu'):.0f}"
                )
    print(f"load average: {os.getloadavg()}")
    record(
        "loadgen",
        {"seconds": SECONDS, "rounds": ROUNDS},
        {
            side: {
                f"{protocol} {workload} x{clients} cpu_us": med(v, "cpu")
                for (version, s, protocol, workload, clients), v in runs.items()
                if version == "ours" and s == side
            }
            for side in ("raftmon", "etcd")
        },
    )
    assert all(r["succeeded"] > 0 for v in runs.values() for r in v)
