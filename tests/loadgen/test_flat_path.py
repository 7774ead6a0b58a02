"""The client threads' flat hot path (`loadgen.runner.Clients.flat`) for plain requests.

Each test makes the coroutine path (`Clients.thread`) fail if it is ever taken, so what
is checked is the flat path's own bookkeeping: errors counted by kind as etcd words them,
latencies recorded for every success, `--total` exact, the open loop's schedule held, a
member killed mid-run counted, not fatal. Against a scripted server (exact answers and
failures), a real etcd 3.4 member and a real raftmon member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from loadgen.runner import Clients
from tests.helpers import etcd_cluster
from tests.loadgen.conftest import put_count, run_load
from tests.loadgen.runs import load_argv, run_load_in_thread, run_open_loop
from tests.loadgen.test_against_etcd import wait_for
from tests.loadgen.test_lean_http import CHUNKED, HEAD, Scripted, answer, etcd_error


@pytest.fixture(autouse=True)
def flat_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain requests on client threads never take the coroutine path."""

    def refuse(self: Clients, client: int) -> None:
        raise AssertionError("a plain workload's client thread left the flat path")

    monkeypatch.setattr(Clients, "thread", refuse)


def flat_argv(endpoints: list[str], workload: str, *flags: str, **options: int | str) -> list[str]:
    return load_argv(endpoints, workload, *flags, client_io="threads", **options)


def assert_accounted(report: dict[str, Any], total: int) -> None:
    """Every ticket sent once, each answer counted once, every success timed."""
    assert report["sent"] == total
    assert report["succeeded"] + report["failed"] == total
    assert sum(report["errors"].values()) == report["failed"]
    assert report["latency_seconds"]["count"] == report["succeeded"]


# -- a scripted server: each answer and failure exactly ---------------------------------
# Request n (1-based) gets SCRIPT[(n - 1) % len(SCRIPT)]: successes framed every way, etcd's
# errors, and a reset (the client reconnects for the next request).
SCRIPT: list[Any] = [
    [answer()],
    [etcd_error("503 Service Unavailable", "etcdserver: no leader", 14)],
    [CHUNKED[:HEAD], CHUNKED[HEAD:]],  # split between head and body
    [answer(b"{}", "413 Request Entity Too Large")],
    "reset",
    [etcd_error("400 Bad Request", "etcdserver: request is too large", 3)],
    ([answer(b"{}", "200 OK", "Connection: close")], "close"),
]
PER_ROUND = {"success": 3, "no_leader": 1, "too_large": 2, "conn_lost": 1}


@pytest.mark.parametrize("workload", ["put", "range", "txn-put", "mixed"])
async def test_scripted_answers_are_counted_by_kind_and_timed(workload: str) -> None:
    rounds = 5
    total = rounds * len(SCRIPT)
    async with Scripted(lambda n: SCRIPT[(n - 1) % len(SCRIPT)]) as server:
        # One client: the script's order is the tickets' order.
        code, report = await asyncio.to_thread(
            run_load,
            flat_argv([server.url], workload, "--key-space-size=10", clients=1, total=total),
        )
    assert code == 0
    assert_accounted(report, total)
    assert report["succeeded"] == rounds * PER_ROUND["success"]
    for kind, count in PER_ROUND.items():
        if kind != "success":
            assert report["errors"][kind] == rounds * count, report["errors"]
    assert len(server.requests) == total
    paths = {head.split(b" ")[1] for head, _body in server.requests}
    expected = {
        "put": {b"/v3/kv/put"},
        "range": {b"/v3/kv/range"},
        "txn-put": {b"/v3/kv/txn"},
        "mixed": {b"/v3/kv/put", b"/v3/kv/range"},
    }[workload]
    assert paths == expected


async def test_a_silent_server_is_a_timeout_and_the_run_goes_on() -> None:
    async with Scripted(lambda n: "silence" if n == 2 else [answer()]) as server:
        code, report = await asyncio.to_thread(
            run_load, flat_argv([server.url], "put", clients=1, total=4, timeout="300ms")
        )
    assert code == 0
    assert_accounted(report, 4)
    assert report["errors"]["timeout"] == 1
    assert report["succeeded"] == 3


async def test_refused_connections_are_counted_not_fatal() -> None:
    async with Scripted(lambda n: [answer()]) as server:
        url = server.url
    code, report = await asyncio.to_thread(
        run_load, flat_argv([url], "range", clients=2, total=10, timeout="1s")
    )
    assert code == 0
    assert_accounted(report, 10)
    assert report["errors"]["conn_refused"] == 10


# -- real servers ----------------------------------------------------------------------
@pytest.mark.tools
@pytest.mark.cluster
@pytest.mark.parametrize("side", ["etcd1", "raftmon1"])
@pytest.mark.parametrize("clients", [1, 3])
def test_puts_and_ranges_against_real_servers_are_exact(
    request: pytest.FixtureRequest, side: str, clients: int
) -> None:
    server: EtcdCluster | LocalCluster = request.getfixturevalue(side)
    member = server.members[0]
    before = put_count(member)
    for workload in ("put", "range"):
        argv = flat_argv(
            server.endpoints, workload, "--key-space-size=50", clients=clients, total=200
        )
        code, report = run_load(argv)
        assert code == 0
        assert report["failed"] == 0, report["errors"]
        assert_accounted(report, 200)
        if workload == "put":
            assert wait_for(lambda: put_count(member) - before >= 200)
            assert put_count(member) - before == 200


@pytest.mark.tools
def test_open_loop_on_client_threads_holds_the_rate(etcd1: EtcdCluster, tmp_path: Path) -> None:
    report = run_open_loop(
        etcd1.endpoints, rate=100, seconds=2, report_dir=tmp_path, client_io="threads"
    )
    assert report["succeeded"] == 200


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A one-member etcd of this test's own, to kill."""
    cluster = etcd_cluster(tmp_path / "victim")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.tools
def test_a_member_killed_mid_run_is_counted_not_fatal(victim: EtcdCluster) -> None:
    member = victim.members[0]
    before = put_count(member)
    thread, result = run_load_in_thread(
        flat_argv(victim.endpoints, "put", clients=2, duration="3s", timeout="1s")
    )
    try:
        assert wait_for(lambda: put_count(member) - before > 20)
        victim.kill(member.name)
    finally:
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["code"] == 0
    report = result["report"]
    assert report["succeeded"] > 0
    lost = report["errors"]["conn_refused"] + report["errors"]["conn_lost"]
    assert lost + report["errors"]["timeout"] == report["failed"] > 0
    assert report["succeeded"] + report["failed"] == report["sent"]
