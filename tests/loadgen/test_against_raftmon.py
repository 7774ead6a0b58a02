"""`raftmon load` against a real 3-member raftmon cluster.

The cluster is `lab.cluster.LocalCluster`: real member processes on free loopback
ports, started with `--enable-fault-injection`, so a test can cut links with
`POST <metrics-url>/raftmon/faults {"peers": {"m2": {"drop": true}}}` (a one-way
partition: this member drops everything it sends to m2) and heal them again, or
freeze a whole member with SIGSTOP (`pause`/`resume`).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.cluster import LocalCluster, MemberProcess
from lab.procs import http_json
from loadgen.client import parse_metrics
from loadgen.errors import ERROR_KINDS
from tests.helpers import free_port
from tests.loadgen.conftest import put_count, read_series, run_load
from tests.loadgen.runs import load_argv, run_load_in_thread, run_open_loop, run_without_errors

pytestmark = [pytest.mark.cluster]


@pytest.fixture(scope="module")
def raftmon3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("raftmon3"), size=3)
    try:
        cluster.start()
        cluster.wait_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def applied_at_least(member: MemberProcess, count: float) -> Callable[[], bool]:
    """A predicate: `member` has applied `count` puts (followers apply after the ack)."""
    return lambda: put_count(member) >= count


def test_report_success_count_equals_server_put_count_delta(raftmon3: LocalCluster) -> None:
    before = {m.name: put_count(m) for m in raftmon3.members}
    code, report = run_load(
        load_argv(
            raftmon3.endpoints, "put", "--total=300", "--key-space-size=100", conns=3, clients=6
        )
    )
    assert code == 0
    assert report["failed"] == 0, report["errors"]
    assert report["succeeded"] == 300
    for m in raftmon3.members:
        assert wait_for(applied_at_least(m, before[m.name] + 300)), m.name
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
    raftmon3: LocalCluster, workload: str, extra: list[str]
) -> None:
    run_without_errors(raftmon3.endpoints, workload, extra, clients=3, total=150)


def test_rate_holds_within_tolerance(raftmon3: LocalCluster, tmp_path: Path) -> None:
    report = run_open_loop(raftmon3.endpoints, rate=50, seconds=3, report_dir=tmp_path, conns=3)
    assert report["failed"] == 0, report["errors"]


def isolate(cluster: LocalCluster, name: str, *, drop: bool) -> None:
    """Cut (or heal) every link between member `name` and the others, both directions."""
    victim = cluster.member(name)
    others = [m for m in cluster.members if m.name != name]
    faults = [(victim, {m.name: {"drop": drop} for m in others})]
    faults += [(m, {name: {"drop": drop}}) for m in others]
    for member, peers in faults:
        answer = http_json(member.metrics_url + "/raftmon/faults", {"peers": peers})
        assert isinstance(answer, dict), answer
        assert "error" not in answer, (member.name, answer)


def generator_outcomes(port: int) -> dict[str, float]:
    """Requests the running generator has counted so far, by outcome (its own metrics)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            samples = parse_metrics(resp.read().decode())
    except OSError:
        return {}
    counted = "raftmon_loadgen_requests_total"
    return {kind: samples.sum(counted, outcome=kind) for kind in ("success", *ERROR_KINDS)}


def test_partition_mid_run_is_counted_as_errors_not_a_crash(
    raftmon3: LocalCluster, tmp_path: Path
) -> None:
    leader = raftmon3.wait_leader(timeout=30)
    majority = [m for m in raftmon3.members if m.name != leader]
    before = {m.name: put_count(m) for m in raftmon3.members}
    port = free_port()
    thread, result = run_load_in_thread(
        load_argv(
            raftmon3.endpoints,
            "put",
            "--key-space-size=100",
            conns=3,  # one connection per member
            clients=6,
            duration="10s",  # ample: the partition is healed once its effects are seen
            timeout="1s",
            metrics_port=port,
        ),
        report_dir=tmp_path,
    )
    try:
        assert wait_for(lambda: put_count(majority[0]) - before[majority[0].name] > 20, 10)
        isolate(raftmon3, leader, drop=True)
        cut = {m.name: put_count(m) for m in majority}
        # The majority elects a leader of its own (wait_leader also waits for the old
        # leader to stop claiming leadership: CheckQuorum) and keeps applying puts.
        assert raftmon3.wait_leader(timeout=15, exclude=leader) != leader
        assert wait_for(lambda: all(put_count(m) - cut[m.name] > 20 for m in majority), 10), (
            raftmon3.logs_tail()
        )
        # Hold the partition until the generator has met the minority side's failure:
        # requests in flight at the cut, and later ones the stepped-down old leader holds
        # for want of a leader (as etcd holds them), time out.
        assert wait_for(lambda: generator_outcomes(port).get("timeout", 0) > 0), generator_outcomes(
            port
        )
    finally:
        isolate(raftmon3, leader, drop=False)
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert result.get("code") == 0, result  # no code at all: the run raised
    report = result["report"]
    errors = report["errors"]
    assert errors["timeout"] > 0, errors
    assert errors["timeout"] + errors["no_leader"] == report["failed"], errors  # nothing else
    assert report["succeeded"] + report["failed"] == report["sent"]
    rows = read_series(tmp_path)
    first_error = next(i for i, r in enumerate(rows) if r["errors"])
    assert any(r["throughput"] for r in rows[first_error + 1 :]), rows  # successes go on

    # Every acknowledged put was applied, by every member once the partition healed.
    # NB: the count is exact only up to the timeouts: a put whose client gave up may
    # still commit (an entry the old leader replicated just before the cut is
    # committed by the new leader, Raft §5.4.2), and the client cannot know.
    def deltas() -> dict[str, float]:
        return {m.name: put_count(m) - before[m.name] for m in raftmon3.members}

    def converged() -> bool:
        applied = set(deltas().values())
        return len(applied) == 1 and applied.pop() >= report["succeeded"]

    assert wait_for(converged), deltas()
    applied = deltas()[leader]
    assert report["succeeded"] <= applied <= report["succeeded"] + errors["timeout"], errors


@pytest.mark.parametrize("client_io", ["loop", "threads"])
def test_frozen_leader_mid_run_is_counted_as_errors_not_a_crash(
    raftmon3: LocalCluster, tmp_path: Path, client_io: str
) -> None:
    """SIGSTOP: unlike a partition, the leader's sockets stay open and nothing answers.

    The freeze shows as failed requests (timeouts, no leader) or as requests held through
    the election: a follower whose stream to the frozen leader is down holds the puts it
    was sent and hands them to the new leader, so they may all succeed, late. Clients on
    threads block in their sockets' reads and time out alike."""
    leader = raftmon3.wait_leader(timeout=30)
    before = put_count(raftmon3.member(leader))
    thread, result = run_load_in_thread(
        load_argv(
            raftmon3.endpoints,
            "put",
            conns=3,
            clients=6,
            duration="5s",
            timeout="1s",
            client_io=client_io,
        ),
        report_dir=tmp_path,
    )
    try:
        assert wait_for(lambda: put_count(raftmon3.member(leader)) - before > 20, timeout=10)
        raftmon3.pause(leader)  # the leader vanishes for clients and peers alike
        raftmon3.wait_leader(timeout=15, exclude=leader)
    finally:
        raftmon3.resume(leader)
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert result["code"] == 0
    report = result["report"]
    errors = report["errors"]
    assert report["succeeded"] > 0
    assert errors["timeout"] + errors["no_leader"] == report["failed"], errors
    assert report["failed"] > 0 or report["latency_seconds"]["slowest"] > 0.3, report
    assert report["succeeded"] + report["failed"] == report["sent"]
    raftmon3.wait_leader(timeout=30)
