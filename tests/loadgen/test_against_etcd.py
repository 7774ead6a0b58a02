"""`raftmon load` against real etcd 3.4 (Debian's etcd-server) on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lab.etcd_cluster import EtcdCluster
from tests.helpers import etcd_cluster, free_port
from tests.loadgen.conftest import put_count, run_load
from tests.loadgen.runs import load_argv, run_load_in_thread, run_open_loop, run_without_errors

pytestmark = [pytest.mark.tools, pytest.mark.cluster]


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


@pytest.mark.parametrize(
    ("cluster", "flags", "options"),
    [
        ("etcd1", ["--key-space-size=50", "--val-size=64"], {"clients": 8, "conns": 2}),
        ("etcd3", ["--key-space-size=100", "--sequential-keys"], {"conns": 3, "clients": 9}),
        # Client threads share the tickets: each put is sent once, none twice.
        ("etcd3", ["--key-space-size=100"], {"conns": 3, "clients": 9, "client_io": "threads"}),
    ],
)
def test_put_run_success_count_equals_every_members_put_counter_delta(
    request: pytest.FixtureRequest, cluster: str, flags: list[str], options: dict[str, int | str]
) -> None:
    etcd: EtcdCluster = request.getfixturevalue(cluster)
    before = [put_count(m) for m in etcd.members]
    code, report = run_load(load_argv(etcd.endpoints, "put", "--total=300", *flags, **options))
    assert code == 0
    assert report["succeeded"] == 300
    assert report["failed"] == 0
    for m, b in zip(etcd.members, before, strict=True):
        # Followers apply shortly after the leader answers: wait, bounded, for the counter.
        assert wait_for(lambda m=m, b=b: put_count(m) - b >= 300), m.name
        assert put_count(m) - b == 300


@pytest.mark.parametrize(
    ("workload", "extra"),
    [
        ("range", ["--prefill", "--key-space-size=20"]),
        ("range", ["--key-space-size=20", "--consistency=s"]),
        ("txn-put", ["--txn-ops=3", "--key-space-size=10"]),
        ("mixed", ["--read-ratio=0.6", "--key-space-size=20"]),
        ("watch", ["--watchers=3", "--key-space-size=5", "--key-prefix=/watched/"]),
        ("lease-keepalive", ["--ttl=30"]),
    ],
)
def test_workload_completes_with_zero_errors(
    etcd3: EtcdCluster, workload: str, extra: list[str]
) -> None:
    report = run_without_errors(etcd3.endpoints, workload, extra, clients=6, total=240)
    assert report["workload"] == workload
    if workload == "watch":
        events = report["watch_events"]
        assert events["missing"] == 0
        assert events["received"] == 240 * 3  # every put seen by every watcher
    if workload == "mixed":
        assert set(report["ops"]) == {"put", "range"}
        assert sum(op["succeeded"] for op in report["ops"].values()) == 240


def test_open_loop_rate_holds_within_tolerance(etcd1: EtcdCluster, tmp_path: Path) -> None:
    rate = 100
    report = run_open_loop(
        etcd1.endpoints[:1],
        rate=rate,
        seconds=2,
        report_dir=tmp_path,
        put_flags=["--key-space-size=10"],
    )
    assert report["latency_measured_from"] == "intended_send_time"
    assert report["succeeded"] == 2 * rate


def test_target_leader_sends_only_to_the_leader(etcd3: EtcdCluster) -> None:
    leader = etcd3.member(etcd3.wait_leader())
    before = put_count(leader)
    code, report = run_load(
        load_argv(etcd3.endpoints, "put", "--total=50", target_leader=True, clients=2)
    )
    assert code == 0
    assert report["config"]["endpoints"] == [leader.client_url]
    assert report["succeeded"] == 50
    assert put_count(leader) - before == 50


def test_closed_port_endpoint_is_counted_as_connection_refused(etcd1: EtcdCluster) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    code, report = run_load(
        [
            f"--endpoints={etcd1.endpoints[0]}",
            f"--endpoints={closed}",
            "--conns=2",
            "--clients=4",
            "put",
            "--total=200",
        ]
    )
    assert code == 0
    assert report["errors"]["conn_refused"] > 0
    assert report["succeeded"] > 0
    assert report["succeeded"] + report["failed"] == report["sent"] == 200


@pytest.mark.parametrize("client_io", ["loop", "threads"])
def test_member_killed_mid_run_is_counted_as_errors_not_a_crash(
    tmp_path: Path, client_io: str
) -> None:
    cluster = etcd_cluster(tmp_path / "victim")
    try:
        cluster.start()
        before = put_count(cluster.members[0])
        thread, result = run_load_in_thread(
            load_argv(
                cluster.endpoints[:1],
                "put",
                clients=4,
                duration="3s",
                timeout="1s",
                client_io=client_io,
            )
        )
        assert wait_for(lambda: put_count(cluster.members[0]) - before > 20, timeout=10)
        cluster.kill(cluster.members[0].name)
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        cluster.stop()
    report = result["report"]
    assert result["code"] == 0
    assert report["succeeded"] > 0
    lost = report["errors"]["conn_refused"] + report["errors"]["conn_lost"]
    assert lost + report["errors"]["timeout"] == report["failed"] > 0
    assert report["succeeded"] + report["failed"] == report["sent"]
