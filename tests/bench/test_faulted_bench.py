"""`make bench`: a faulted run, raftmon against etcd 3.4, failed operations counted.

A 3-member raftmon cluster and then a 3-member Debian etcd-server cluster (default
timings: 100 ms heartbeat, 1 s election timeout, so a 7 s request timeout) each take
the same `raftmon load --protocol=grpc`: puts from RAFTMON_FAULTED_CLIENTS clients
spread over all three members, and beside them a few clients keeping leases alive.
Meanwhile the same faults hit both, RAFTMON_FAULTED_ROUNDS times: kill -9 of the leader
and its restart DOWN_SECONDS later, then SIGSTOP of the (new) leader for DOWN_SECONDS,
longer than an election timeout, and SIGCONT.

Per side it prints the operations that failed, split into the definite failures (the
cluster refused, e.g. etcd's "no leader": nothing was done) and the indeterminate ones
(timed out, connection lost, or any other answer: the write may or may not have
happened), and the ratio raftmon/etcd of their sum. Calls refused by the kernel because
their endpoint is the killed member are shown apart and not compared: the load tool's
clients spin on a dead endpoint, so their count measures the tool and the time a member
is down, not how the cluster treats requests during an election. Issue 17's goal: no
more than 1.2x etcd's.
A benchmark: it asserts only that both runs completed with successes, never a count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.members import ProcessCluster
from tests.bench.results import record
from tests.helpers import require_tool

ROUNDS = int(os.environ.get("RAFTMON_FAULTED_ROUNDS", "3"))
CLIENTS = int(os.environ.get("RAFTMON_FAULTED_CLIENTS", "16"))
LEASE_CLIENTS = int(os.environ.get("RAFTMON_FAULTED_LEASE_CLIENTS", "4"))
ROUND_SECONDS = 20.0  # kill at +4 s, restart at +7 s; SIGSTOP at +12 s, SIGCONT at +15 s
DOWN_SECONDS = 3.0  # a killed leader stays down, a stopped one stopped, this long
CLIENT_TIMEOUT = "10s"  # beyond the members' 7 s request timeout: the servers answer
LOAD_SECONDS = ROUNDS * ROUND_SECONDS + 5.0
# How long a round waits for the cluster to agree on a leader before it strikes. Far above
# an election: this VM is sometimes paused whole for 10-35 s (every member and this
# harness logged nothing, then every timer fired at once); a shorter wait then expired
# during the pause itself and ended the run with no figure for either side.
LEADER_WAIT_SECONDS = 90.0
pytestmark = [pytest.mark.bench, pytest.mark.timeout(int(4 * LOAD_SECONDS) + 300)]

DEFINITE = ("no_leader", "too_large", "no_space")  # the cluster refused: nothing done
INDETERMINATE = ("timeout", "conn_lost", "other")  # the write may or may not have landed
# A client whose endpoint is the killed member: refused by the kernel at once, over and
# over (a closed loop spins on it), however the cluster behaves. Shown, not compared.
DOWN = ("conn_refused",)


def _load(endpoints: list[str], *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "lab", "load", "--protocol=grpc",
        f"--endpoints={','.join(endpoints)}", "--no-progress", "--json",
        f"--timeout={CLIENT_TIMEOUT}", f"--duration={LOAD_SECONDS}s", *args,
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=LOAD_SECONDS + 120)
    assert proc.returncode == 0, err[-2000:]
    report: dict[str, Any] = json.loads(out)
    return report


def _signal(cluster: ProcessCluster[Any], name: str, sig: signal.Signals) -> None:
    """SIGSTOP / SIGCONT one member of either kind of cluster."""
    m = cluster.member(name)
    if m.proc is not None and m.alive:
        os.kill(m.proc.pid, sig)
        m.paused = sig == signal.SIGSTOP


def _until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _faults(cluster: ProcessCluster[Any], started: float) -> list[str]:
    """The faults of every round, at fixed offsets from `started`; what was done."""
    done = []
    for r in range(ROUNDS):
        base = started + r * ROUND_SECONDS
        _until(base + 4.0)
        victim = cluster.wait_leader(timeout=LEADER_WAIT_SECONDS)
        cluster.kill(victim)
        _until(base + 4.0 + DOWN_SECONDS)
        cluster.restart(victim, wait=False)  # type: ignore[attr-defined]
        done.append(f"kill -9 {victim}")
        _until(base + 12.0)
        victim = cluster.wait_leader(timeout=LEADER_WAIT_SECONDS)
        _signal(cluster, victim, signal.SIGSTOP)
        _until(base + 12.0 + DOWN_SECONDS)
        _signal(cluster, victim, signal.SIGCONT)
        done.append(f"SIGSTOP {victim}")
    return done


def _run_side(cluster: ProcessCluster[Any]) -> dict[str, Any]:
    cluster.wait_leader(timeout=LEADER_WAIT_SECONDS)
    endpoints = cluster.endpoints
    puts = _load(
        endpoints,
        f"--clients={CLIENTS}",
        f"--conns={min(CLIENTS, 8)}",
        "put",
        "--key-size=8",
        "--val-size=256",
        "--key-space-size=10000",
    )
    leases = _load(endpoints, f"--clients={LEASE_CLIENTS}", "lease-keepalive", "--ttl=30")
    started = time.monotonic()
    try:
        faults = _faults(cluster, started)
    except BaseException:
        puts.kill()
        leases.kill()
        raise
    reports = {"put": _report(puts), "lease-keepalive": _report(leases)}
    out: dict[str, Any] = {"faults": faults}
    out["by_phase"] = {name: errors_by_phase(rep) for name, rep in reports.items()}
    for name, rep in reports.items():
        errors = rep["errors"]
        out[name] = {
            "succeeded": rep["succeeded"],
            "failed": rep["failed"],
            "definite": sum(errors.get(k, 0) for k in DEFINITE),
            "indeterminate": sum(errors.get(k, 0) for k in INDETERMINATE),
            "refused_while_down": sum(errors.get(k, 0) for k in DOWN),
            "errors": {k: v for k, v in errors.items() if v},
        }
    return out


# The phases of a round, by their start (seconds into the round; see _faults), named for
# the fault in force. A failure counts in the phase of the second it completed in: a
# timeout completes a request timeout after it was sent, so late phases hold them.
PHASES = (
    (0.0, "steady"),
    (4.0, "leader killed"),
    (4.0 + DOWN_SECONDS, "killed leader restarted"),
    (12.0, "leader stopped"),
    (12.0 + DOWN_SECONDS, "stopped leader resumed"),
)


def errors_by_phase(report: dict[str, Any]) -> dict[str, int]:
    """The load tool's failed completions per second, summed by round phase."""
    out = {name: 0 for _, name in PHASES}
    for row in report.get("timeseries", []):
        offset = float(row["second"]) % ROUND_SECONDS
        phase = [name for start, name in PHASES if start <= offset][-1]
        out[phase] += int(row["errors"])
    return out


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("1.00x" if a == b else "inf")


def test_faulted_run_raftmon_against_real_etcd(tmp_path: Path) -> None:
    etcd = require_tool("etcd")
    sides: dict[str, ProcessCluster[Any]] = {
        "raftmon": LocalCluster(tmp_path / "raftmon", 3, fault_injection=False),
        "etcd": EtcdCluster(etcd, tmp_path / "etcd", 3),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, cluster in sides.items():
        cluster.start()
        try:
            results[name] = _run_side(cluster)
            print(f"\n{name}: {json.dumps(results[name])}", flush=True)
        finally:
            for m in cluster.members:
                if m.paused:
                    _signal(cluster, m.name, signal.SIGCONT)
            cluster.stop()
    r, e = results["raftmon"], results["etcd"]
    print(
        f"\nfaulted run: {ROUNDS} rounds of kill -9 + restart and SIGSTOP + SIGCONT of the "
        f"leader ({DOWN_SECONDS:.0f} s each), {LOAD_SECONDS:.0f} s of load: {CLIENTS} put "
        f"clients, {LEASE_CLIENTS} lease keep-alive clients, gRPC, client timeout "
        f"{CLIENT_TIMEOUT}; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'operations':<34} {'raftmon':>10} {'etcd':>10} {'ratio':>8}")
    total = {"raftmon": 0, "etcd": 0}
    for workload in ("put", "lease-keepalive"):
        for measure in ("succeeded", "definite", "indeterminate", "refused_while_down"):
            a, b = r[workload][measure], e[workload][measure]
            print(f"{workload + ' ' + measure:<34} {a:>10} {b:>10} {_ratio(a, b):>8}")
        for side, res in results.items():
            total[side] += res[workload]["definite"] + res[workload]["indeterminate"]
    a, b = total["raftmon"], total["etcd"]
    print(f"{'failed + indeterminate (all)':<34} {a:>10} {b:>10} {_ratio(a, b):>8}")
    for side, res in results.items():
        errors = {w: res[w]["errors"] for w in ("put", "lease-keepalive")}
        print(f"{side} errors by kind: {errors}")
        print(f"{side} errors by phase: {res['by_phase']}")
    record(
        "faulted",
        {"rounds": ROUNDS, "clients": CLIENTS, "lease_clients": LEASE_CLIENTS},
        {side: {**results[side], "failed_plus_indeterminate": total[side]} for side in results},
    )
    assert r["put"]["succeeded"] > 0
    assert e["put"]["succeeded"] > 0
