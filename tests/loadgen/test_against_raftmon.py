"""`raftmon load` against a real 3-member raftmon cluster (issue 6's cluster tests).

Uses the lead's `node.cluster.LocalCluster(base_dir, size=3)`: a context manager that
starts member processes on free loopback ports and stops them; `.endpoints` (client
URLs), `.members[i].metrics_url` / `.client_url`, `.leader()` (member name or None),
`.wait_leader(timeout, exclude=...)`, `.pause(name)` / `.resume(name)` (SIGSTOP /
SIGCONT: the member is cut off from clients and peers alike, a partition of one).
Skipped until `node.cluster` exists.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.client import parse_metrics
from tests.loadgen.conftest import run_load
from tests.loadgen.etcd_cluster import PUT_COUNTERS

cluster_mod = pytest.importorskip("node.cluster")
LocalCluster: Any = getattr(cluster_mod, "LocalCluster", None)
if LocalCluster is None:  # pragma: no cover - the module exists but not the fixture yet
    pytest.skip("node.cluster has no LocalCluster yet", allow_module_level=True)

pytestmark = [pytest.mark.cluster]


@pytest.fixture(scope="module")
def raftmon3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cluster = LocalCluster(tmp_path_factory.mktemp("raftmon3"), size=3)
    try:
        cluster.start()
        cluster.wait_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop()


def put_count(member: Any) -> float:
    """The member's own applied-put counter (etcd's family names)."""
    for base in (getattr(member, "metrics_url", None), member.client_url):
        if not base:
            continue
        try:
            with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
                samples = parse_metrics(resp.read().decode())
        except OSError:
            continue
        for name in PUT_COUNTERS:
            value = samples.get(name)
            if value is not None:
                return value
    raise AssertionError(f"no put counter ({PUT_COUNTERS}) on {member.name}")


def wait_for(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_report_success_count_equals_server_put_count_delta(raftmon3: Any) -> None:
    before = {m.name: put_count(m) for m in raftmon3.members}
    code, report = run_load(
        [
            f"--endpoints={','.join(raftmon3.endpoints)}",
            "--conns=3",
            "--clients=6",
            "put",
            "--total=300",
            "--key-space-size=100",
        ]
    )
    assert code == 0
    assert report["failed"] == 0, report["errors"]
    assert report["succeeded"] == 300
    for m in raftmon3.members:
        assert wait_for(lambda m=m: put_count(m) - before[m.name] >= 300), m.name
        assert put_count(m) - before[m.name] == 300


@pytest.mark.parametrize(
    ("workload", "extra"),
    [
        ("range", ["--prefill", "--key-space-size=20"]),
        ("range", ["--prefill", "--key-space-size=20", "--consistency=s"]),
        ("txn-put", ["--txn-ops=2", "--key-space-size=10"]),
        ("mixed", ["--read-ratio=0.5", "--key-space-size=20"]),
        ("watch", ["--watchers=2", "--key-space-size=5"]),
        ("lease-keepalive", []),
    ],
)
def test_workloads_complete_with_zero_errors(
    raftmon3: Any, workload: str, extra: list[str]
) -> None:
    code, report = run_load(
        [
            f"--endpoints={','.join(raftmon3.endpoints)}",
            "--conns=3",
            "--clients=3",
            "--total=150",
            workload,
            *extra,
        ]
    )
    assert code == 0
    assert report["failed"] == 0, report["errors"]
    assert report["succeeded"] == 150


def test_rate_holds_the_scheduled_count(raftmon3: Any) -> None:
    code, report = run_load(
        [
            f"--endpoints={','.join(raftmon3.endpoints)}",
            "--clients=4",
            "--rate=50",
            "--duration=2s",
            "put",
        ]
    )
    assert code == 0
    assert report["sent"] == 100
    assert report["unsent"] == 0


def test_partition_mid_run_is_counted_as_errors_not_a_crash(raftmon3: Any, tmp_path: Path) -> None:
    leader = raftmon3.wait_leader(timeout=30)
    result: dict[str, Any] = {}

    def load() -> None:
        result["code"], result["report"] = run_load(
            [
                f"--endpoints={','.join(raftmon3.endpoints)}",
                "--conns=3",
                "--clients=6",
                "--duration=5s",
                "--timeout=1s",
                "put",
            ],
            report_dir=tmp_path,
        )

    thread = threading.Thread(target=load)
    before = put_count(raftmon3.member(leader))
    thread.start()
    try:
        assert wait_for(lambda: put_count(raftmon3.member(leader)) - before > 20, timeout=10)
        raftmon3.pause(leader)  # the leader vanishes for clients and peers alike
        thread.join(timeout=30)
    finally:
        raftmon3.resume(leader)
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["code"] == 0
    report = result["report"]
    assert report["succeeded"] > 0
    assert report["failed"] > 0
    assert report["succeeded"] + report["failed"] == report["sent"]
    raftmon3.wait_leader(timeout=30)
