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
   leader's revision is measured (RAFTMON_SCALE_CATCHUP_ROUNDS times, 3 by default:
   the median is the figure, min and max are printed); it must catch up by a snapshot on both sides
   (etcd 3.4 cannot take back a wiped member under the same id without member
   remove/add, so the follower lags instead of losing its disk);
4. soak: puts at 64 clients for RAFTMON_SCALE_SOAK_SECONDS with auto compaction on;
   counted: throughput, failed puts, leader changes. "60" soaks 60 s at every size;
   "60,100000:600" soaks 600 s at 100k keys and 60 s at the others (issue 17 asks for a
   10-minute soak at 100k only, and `make bench-goals` then spends 36 minutes less).

Also printed: the bytes in each member's snap directory besides the live database
(raftmon's snapshots are markers, etcd's are small files). Sizes come from
RAFTMON_SCALE_KEYS ("10000,100000" by default; "500000" when asked). A benchmark:
it asserts only that the runs completed, never a timing; the ratios are printed.
"""

from __future__ import annotations

import json
import os
import statistics
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
from tests.bench.results import record
from tests.cluster.etcdjson import b64, call, put
from tests.helpers import require_tool

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

SIZES = [int(s) for s in os.environ.get("RAFTMON_SCALE_KEYS", "10000,100000").split(",") if s]


def soak_seconds(spec: str, keys: int) -> int:
    """The soak's length at `keys` from "DEFAULT[,KEYS:SECONDS...]" (see step 4 above)."""
    default, per_size = 60, {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        size, sep, seconds = item.partition(":")
        if sep:
            per_size[int(size)] = int(seconds)
        else:
            default = int(size)
    return per_size.get(keys, default)


SOAK_SPEC = os.environ.get("RAFTMON_SCALE_SOAK_SECONDS", "60")
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
# Catch-up is timed this many times per side (the median is the figure) and polled this
# often: one ~0.3 s figure polled every 50 ms moved the ratio by up to 0.3 between runs.
CATCHUP_ROUNDS = int(os.environ.get("RAFTMON_SCALE_CATCHUP_ROUNDS", "3"))
CATCHUP_POLL_SECONDS = 0.01


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


class Trickle:
    """One client putting in a loop to the members round-robin (timeout 10 s each).

    Each failure keeps its kind and text: an error answer (its message), or an exception
    (its class and the seconds the put had taken), so a failed put in the window says
    whether a member refused it or did not answer in time. The slowest put is kept too.
    """

    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints
        self.ok = 0
        self.failures: list[str] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        for i in range(10_000_000):  # bounded; stopped by `stop` long before
            if self._stop.is_set():
                return
            url = self.endpoints[i % len(self.endpoints)]
            self._put_once(url, f"trickle/{i % 1000}")

    def _put_once(self, url: str, key: str) -> None:
        started = time.monotonic()
        failure = ""
        try:
            resp = put(url, key, "x", timeout=10)
            if "error" in resp:
                failure = f"error answer from {url}: {resp.get('error') or resp.get('message')}"
        except (OSError, ValueError) as err:
            failure = f"{type(err).__name__} from {url}: {err}"
        took = time.monotonic() - started
        self.slowest = max(self.slowest, took)
        if failure:
            self.failures.append(f"{failure} after {took:.2f} s")
        else:
            self.ok += 1


def _compact_defrag(cluster: LocalCluster | EtcdCluster, out: dict[str, float]) -> list[str]:
    """Step 2: compact to the current revision (physically), then defragment every member
    in turn, while a `Trickle` writes; fills `out` and returns the failed puts' texts."""
    metrics = _metrics_urls(cluster)
    changes_before = _metric_sum(metrics, "etcd_server_leader_changes_seen_total")
    writer = Trickle(cluster.endpoints)
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
        writer.stop()
    out["compact_defrag_seconds"] = time.monotonic() - window_started
    out["compact_defrag_leader_changes"] = (
        _metric_sum(metrics, "etcd_server_leader_changes_seen_total") - changes_before
    )
    out["compact_defrag_puts_ok"] = float(writer.ok)
    out["compact_defrag_puts_failed"] = float(len(writer.failures))
    out["compact_defrag_put_max_seconds"] = writer.slowest
    return writer.failures


def _catch_up(cluster: LocalCluster | EtcdCluster, round_: int) -> float:
    """Step 3, once: seconds from a lagging follower's restart to its serving (serializable)
    the revision the leader had when it restarted."""
    leader, leader_url = _leader_url(cluster)
    follower = next(m.name for m in cluster.members if m.name != leader)
    cluster.kill(follower)
    _put_keys([leader_url], SNAPSHOT_COUNT + CATCHUP_ENTRIES + 2000, f"lag{round_}/", clients=16)
    target = _revision(leader_url, serializable=False)
    started = time.monotonic()
    cluster.restart(follower, wait=False)
    url = cluster.member(follower).client_url
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if _revision(url, serializable=True) >= target:
                return time.monotonic() - started
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(CATCHUP_POLL_SECONDS)
    raise AssertionError(f"{follower} did not catch up to revision {target}")


def _run_side(cluster: LocalCluster | EtcdCluster, keys: int) -> tuple[dict[str, float], list[str]]:
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
    failures = _compact_defrag(cluster, out)
    # 3. catch-up of a lagging follower, by snapshot (median of CATCHUP_ROUNDS)
    took = sorted(_catch_up(cluster, round_) for round_ in range(CATCHUP_ROUNDS))
    out["catchup_seconds"] = statistics.median(took)
    out["catchup_seconds_min"], out["catchup_seconds_max"] = took[0], took[-1]
    # 4. soak with auto compaction
    changes_before = _metric_sum(metrics, "etcd_server_leader_changes_seen_total")
    soak_for = soak_seconds(SOAK_SPEC, keys)
    soak = _load(endpoints, "--clients=64", "--conns=16", f"--duration={soak_for}s",
                 "put", "--key-size=12", f"--val-size={VALUE_BYTES}",
                 f"--key-space-size={keys}", "--key-prefix=scale/")  # fmt: skip
    out["soak_puts_per_s"] = float(soak["requests_per_second"])
    out["soak_failed"] = float(soak["failed"])
    out["soak_leader_changes"] = (
        _metric_sum(metrics, "etcd_server_leader_changes_seen_total") - changes_before
    )
    out["snap_dir_bytes"] = float(_snap_bytes(cluster))
    return out, failures


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("1.00x" if a == b else "inf")


@pytest.mark.parametrize("keys", SIZES)
def test_scale_raftmon_against_real_etcd(tmp_path: Path, keys: int) -> None:
    etcd = require_tool("etcd")
    results: dict[str, dict[str, float]] = {}
    failures: dict[str, list[str]] = {}
    ours = LocalCluster(tmp_path / "raftmon", 3, extra_args=FLAGS, fault_injection=False)
    theirs = EtcdCluster(etcd, tmp_path / "etcd", 3, extra_args=FLAGS)
    sides: dict[str, LocalCluster | EtcdCluster] = {"raftmon": ours, "etcd": theirs}
    for name, cluster in sides.items():
        cluster.start()
        try:
            cluster.wait_leader(timeout=60)
            results[name], failures[name] = _run_side(cluster, keys)
            print(f"\n{name} at {keys} keys: {results[name]}", flush=True)
        finally:
            cluster.stop()
    r, e = results["raftmon"], results["etcd"]
    soak_for = soak_seconds(SOAK_SPEC, keys)
    print(f"\nscale run: {keys} keys of {VALUE_BYTES} B, 3 members each, soak {soak_for} s")
    print(f"{'measure':<32} {'raftmon':>12} {'etcd':>12} {'ratio':>8}")
    for key in r:
        print(f"{key:<32} {r[key]:>12.2f} {e[key]:>12.2f} {_ratio(r[key], e[key]):>8}")
    for name, texts in failures.items():
        print(f"{name}: {len(texts)} failed puts during compaction + defrag")
        for text in texts:
            print(f"  {text}")
    record(
        "scale",
        {"keys": keys, "soak_seconds": soak_for, "value_bytes": VALUE_BYTES},
        {name: {**results[name], "failures": failures[name]} for name in results},
    )
    assert r["load_puts_per_s"] > 0
    assert e["load_puts_per_s"] > 0
