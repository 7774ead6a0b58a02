"""`make bench`, restart run: kill -9 of all three members, then the time to the first write.

For each size (RAFTMON_RESTART_KEYS, "10000,100000" by default; add 500000 when
asked), a 3-member raftmon cluster and a 3-member etcd 3.4 cluster are loaded once
with that many keys of 1 KiB values (etcd's default flags, a quota large enough for
them). Then, for RAFTMON_RESTART_ROUNDS rounds, each side in turn (the order
alternates, the other side is down meanwhile): every member is killed with SIGKILL,
all three are started again, and a client per endpoint retries a put every few ms;
the time from the start to the first acknowledged put is the measure. Printed: each
round, the medians and their ratio, and raftmon's own break-down of the restart from
its members' logs (the "member started" line each member writes once it serves).

A benchmark: it asserts only that the restarts completed, never a timing.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lab.children import spawn
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.members import ProcessCluster
from lab.procs import wait_until
from tests.bench.results import record
from tests.bench.test_scale_bench import _put_keys
from tests.cluster.etcdjson import b64
from tests.helpers import require_tool

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

SIZES = [int(s) for s in os.environ.get("RAFTMON_RESTART_KEYS", "10000,100000").split(",") if s]
ROUNDS = int(os.environ.get("RAFTMON_RESTART_ROUNDS", "5"))  # a median of 3 moved ±30 %
FLAGS = ["--quota-backend-bytes=8589934592"]  # 8 GiB: 500k keys of 1 KiB fit
RETRY_SECONDS = 0.005  # a client's pause between two attempts at one endpoint
FIRST_WRITE_TIMEOUT = 120.0  # bound on one restart
# Another checkout of raftmon's code ("before"): a third cluster, restarted in the same run.
BASELINE = os.environ.get("RAFTMON_RESTART_BASELINE", "")


class BaselineCluster(LocalCluster):
    """A LocalCluster whose members run `checkout`'s code with this interpreter (the
    checkout's `node` package comes first on the path: the members start in it)."""

    def __init__(self, checkout: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checkout = checkout

    def _spawn(self, m: Any) -> None:
        cmd = [sys.executable, "-m", "node", *m.args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        log_file = open(m.log_path, "ab")  # closed by the log pump
        m.proc = spawn(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, cwd=self.checkout,
        )  # fmt: skip
        m.paused = False
        assert m.proc.stdout is not None
        m._log_thread = threading.Thread(
            target=self._pump_log, args=(m.name, m.proc.stdout, log_file), daemon=True
        )
        m._log_thread.start()


def _try_put(url: str, body: bytes) -> bool:
    """One put over a fresh connection; True when it was acknowledged."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2.0)
    try:
        conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = resp.read()
        return resp.status == 200 and b'"header"' in answer
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def first_write_seconds(endpoints: list[str], started: float) -> float:
    """Seconds from `started` until one of the clients (one per endpoint, each retrying
    every RETRY_SECONDS) has a put acknowledged."""
    body = json.dumps({"key": b64("restart/probe"), "value": b64("x")}).encode()
    done = threading.Event()
    first: list[float] = []
    lock = threading.Lock()

    def client(url: str) -> None:
        deadline = started + FIRST_WRITE_TIMEOUT
        while not done.is_set() and time.monotonic() < deadline:
            if _try_put(url, body):
                with lock:
                    first.append(time.monotonic() - started)
                done.set()
                return
            time.sleep(RETRY_SECONDS)

    threads = [threading.Thread(target=client, args=(u,), daemon=True) for u in endpoints]
    for t in threads:
        t.start()
    for t in threads:
        t.join(FIRST_WRITE_TIMEOUT + 5)
    if not first:
        raise AssertionError(f"no put acknowledged within {FIRST_WRITE_TIMEOUT} s")
    return min(first)


def _kill_all(cluster: ProcessCluster[Any]) -> None:
    for m in cluster.members:
        cluster.kill(m.name)


def _wait_all_answer(cluster: ProcessCluster[Any]) -> None:
    cluster.wait_leader(timeout=FIRST_WRITE_TIMEOUT)
    wait_until(
        "every member answers",
        lambda: all(cluster.status(m.name) for m in cluster.members),
        FIRST_WRITE_TIMEOUT,
        interval=0.1,
    )


def restart_once(cluster: ProcessCluster[Any]) -> tuple[float, float, dict[str, int]]:
    """Start every (killed) member; the seconds to the first write, the wall-clock time of
    the start and each member's log size before it (where this start's lines begin)."""
    os.sync()  # the previous run's dirty pages are not written during this one
    time.sleep(0.5)
    offsets = {m.name: m.log_path.stat().st_size if m.log_path.exists() else 0
               for m in cluster.members}  # fmt: skip
    wall = time.time()
    started = time.monotonic()
    for m in cluster.members:
        cluster.restart(m.name, wait=False)  # type: ignore[attr-defined]
    seconds = first_write_seconds(cluster.endpoints, started)
    _wait_all_answer(cluster)
    time.sleep(1.0)  # settled: the next kill hits an idle cluster
    _kill_all(cluster)
    return seconds, wall, offsets


# The lines a raftmon member writes while it starts, in order, as break-down phases.
PHASES = {
    "process started": "imports",
    "backend opened": "store open",
    "wal replayed": "wal replay",
    "bootstrapped": "raft node",
    "leader changed": "election",
    "published local member to cluster through raft": "publish",
    "serving": "listening",
}
PEERS_UP = "established peer stream"  # each member's last one before it serves: peers up


def member_lines(cluster: LocalCluster, offsets: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Each member's JSON log lines since `offsets`."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in cluster.members:
        with open(m.log_path, "rb") as f:
            f.seek(offsets.get(m.name, 0))
            text = f.read().decode(errors="replace")
        out[m.name] = []
        for line in text.splitlines():
            try:
                out[m.name].append(json.loads(line))
            except ValueError:
                continue
    return out


def per_member(cluster: LocalCluster, wall: float, offsets: dict[str, int]) -> dict[str, Any]:
    """Per member: seconds from the start to its peers being connected (its last stream
    established before it serves) and the CPU it spent until serving (its "serving" line)."""
    out: dict[str, Any] = {}
    for name, lines in member_lines(cluster, offsets).items():
        peers_up = cpu = None
        for rec in lines:
            ts = datetime.fromisoformat(str(rec["ts"]).replace("Z", "+00:00")).timestamp()
            if rec.get("msg", "").startswith(PEERS_UP):
                peers_up = ts - wall
            if rec.get("msg") == "serving":
                cpu = float(rec["cpu-seconds"]) if "cpu-seconds" in rec else None
                break
        out[name] = {"peers_up": peers_up, "cpu": cpu}
    return out


def breakdown(cluster: LocalCluster, wall: float, offsets: dict[str, int]) -> dict[str, float]:
    """Seconds from the start (`wall`) to each phase line, the slowest member's, plus the
    seconds each phase took (its line's time minus the previous line's), on the members'
    logs since `offsets`."""
    at: dict[str, float] = {}
    for m in cluster.members:
        with open(m.log_path, "rb") as f:
            f.seek(offsets.get(m.name, 0))
            lines = f.read().decode(errors="replace").splitlines()
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            phase = PHASES.get(str(rec.get("msg")))
            if phase is None or (phase == "election" and rec.get("new-leader") in (None, "0")):
                continue
            ts = datetime.fromisoformat(str(rec["ts"]).replace("Z", "+00:00")).timestamp()
            key = f"{m.name} {phase}"
            at.setdefault(key, ts - wall)  # the first time each member got there
    out: dict[str, float] = {}
    for phase in PHASES.values():
        times = [v for k, v in at.items() if k.endswith(" " + phase)]
        if times:
            out[phase] = max(times)
    return out


def _load(cluster: ProcessCluster[Any], keys: int) -> None:
    report = _put_keys(cluster.endpoints, keys, "restart/", clients=32)
    assert report["failed"] == 0, report
    _wait_all_answer(cluster)
    time.sleep(2.0)
    _kill_all(cluster)


@pytest.mark.parametrize("keys", SIZES)
def test_restart_raftmon_against_real_etcd(tmp_path: Path, keys: int) -> None:
    etcd = require_tool("etcd")
    ours = LocalCluster(tmp_path / "raftmon", 3, extra_args=FLAGS, fault_injection=False)
    theirs = EtcdCluster(etcd, tmp_path / "etcd", 3, extra_args=FLAGS)
    sides: dict[str, ProcessCluster[Any]] = {"raftmon": ours, "etcd": theirs}
    if BASELINE:
        sides["before"] = BaselineCluster(
            BASELINE, tmp_path / "before", 3, extra_args=FLAGS, fault_injection=False
        )
    times: dict[str, list[float]] = {name: [] for name in sides}
    phases: list[dict[str, float]] = []
    members: dict[str, list[dict[str, Any]]] = {"raftmon": [], "before": []}
    try:
        for cluster in sides.values():
            cluster.start()
            cluster.wait_leader(timeout=60)
            _load(cluster, keys)
        for i in range(ROUNDS):
            names = list(sides)
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                seconds, wall, offsets = restart_once(sides[name])
                times[name].append(seconds)
                if name == "raftmon":
                    phases.append(breakdown(ours, wall, offsets))
                if name in members:
                    side = sides[name]
                    assert isinstance(side, LocalCluster)
                    members[name].append(per_member(side, wall, offsets))
                print(f"\nround {i + 1} {name} at {keys} keys: first write after {seconds:.3f} s",
                      flush=True)  # fmt: skip
    finally:
        for cluster in sides.values():
            cluster.stop()
    r, e = statistics.median(times["raftmon"]), statistics.median(times["etcd"])
    print(f"\nrestart run: {keys} keys of 1024 B, 3 members each, kill -9 all, {ROUNDS} rounds")
    print(f"first write after restart (median): raftmon {r:.3f} s, etcd {e:.3f} s, "
          f"ratio {r / e:.2f}x")  # fmt: skip
    if BASELINE:
        b = statistics.median(times["before"])
        print(f"before ({BASELINE}): {b:.3f} s, ratio {b / e:.2f}x; after/before {r / b:.2f}")
    print(f"load average: {os.getloadavg()}")
    for side_name, rounds in members.items():
        ups = [v["peers_up"] for rnd in rounds for v in rnd.values() if v["peers_up"] is not None]
        cpus = [v["cpu"] for rnd in rounds for v in rnd.values() if v["cpu"] is not None]
        if ups:
            print(f"{side_name}: a member's peers connected after {statistics.median(ups):.3f} s "
                  f"(median of {len(ups)}, max {max(ups):.3f})")  # fmt: skip
        if cpus:
            print(f"{side_name}: a member's CPU until serving {statistics.median(cpus):.3f} s "
                  f"(median of {len(cpus)})")  # fmt: skip
    print("raftmon break-down, seconds from the start to each line (slowest member, median):")
    for phase in PHASES.values():
        values = [p[phase] for p in phases if phase in p]
        if values:
            print(f"  {phase:<12} {statistics.median(values):.3f}")
    record(
        "restart",
        {"keys": keys, "rounds": ROUNDS},
        {name: {"first_write_seconds": statistics.median(t)} for name, t in times.items()},
    )
    assert all(len(t) == ROUNDS for t in times.values())
