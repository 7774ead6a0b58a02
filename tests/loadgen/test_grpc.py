"""`raftmon load --protocol grpc` against real etcd 3.4 (and a raftmon member): every
workload's counts, and failures counted by the same kinds, codes and messages as HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2
from lab.certs import make_authority
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from loadgen.config import LoadConfig
from loadgen.errors import EtcdError
from loadgen.grpc_conn import GrpcConn, unary
from loadgen.keyspace import KeySpace
from loadgen.workers import run_async
from tests.helpers import FAST, free_port, require_tool
from tests.loadgen.conftest import put_count, run_load
from tests.loadgen.runs import load_argv

pytestmark = [pytest.mark.tools, pytest.mark.cluster]

GRPC_INVALID_ARGUMENT = 3
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_OUT_OF_RANGE = 11
TOO_LARGE = 1_600_000  # over etcd's --max-request-bytes (1.5 MiB), under gRPC's limit (+512 KiB)
OVER_GRPC_LIMIT = 2_200_000  # over etcd's gRPC receive limit: refused before etcd reads it


def grpc_run(endpoints: list[str], workload: str, *flags: str, **options: Any) -> dict[str, Any]:
    code, report = run_load(load_argv(endpoints, workload, *flags, protocol="grpc", **options))
    assert code == 0
    assert report["protocol"] == "grpc"
    return report


def grpc_run_without_errors(endpoints: list[str], workload: str, *flags: str) -> dict[str, Any]:
    """240 requests of `workload` from 6 clients over 3 channels; every one must succeed."""
    report = grpc_run(endpoints, workload, *flags, conns=3, clients=6, total=240)
    assert report["failed"] == 0, report["errors"]
    assert report["succeeded"] == 240
    return report


def wait_for_count(member: Any, at_least: float, timeout: float = 10.0) -> float:
    """The member's put counter once it reaches `at_least`, or its value at `timeout`."""
    deadline = time.monotonic() + timeout
    count = put_count(member)
    while count < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
        count = put_count(member)
    return count


def test_grpc_puts_equal_the_members_put_counter_delta(etcd1: EtcdCluster) -> None:
    member = etcd1.members[0]
    before = put_count(member)
    report = grpc_run(etcd1.endpoints, "put", "--total=300", "--key-space-size=50", clients=8)
    assert (report["succeeded"], report["failed"]) == (300, 0)
    assert wait_for_count(member, before + 300) - before == 300


@pytest.mark.parametrize(
    ("workload", "extra"),
    [
        ("range", ["--prefill", "--key-space-size=20"]),
        ("range", ["--key-space-size=20", "--consistency=s"]),
        ("range", ["/grpc/", "/grpc0"]),
        ("txn-put", ["--txn-ops=3", "--key-space-size=10"]),
        ("mixed", ["--read-ratio=0.6", "--key-space-size=20"]),
        ("watch", ["--watchers=3", "--key-space-size=5", "--key-prefix=/watched/"]),
        ("lease-keepalive", ["--ttl=30"]),
    ],
)
def test_every_workload_over_grpc_completes_with_zero_errors(
    etcd1: EtcdCluster, workload: str, extra: list[str]
) -> None:
    report = grpc_run_without_errors(etcd1.endpoints, workload, *extra)
    if workload == "watch":
        events = report["watch_events"]
        assert events["missing"] == 0
        assert events["received"] == 240 * 3  # every put seen by every watcher
    if workload == "mixed":
        assert set(report["ops"]) == {"put", "range"}
        assert sum(op["succeeded"] for op in report["ops"].values()) == 240


def test_target_leader_over_grpc_finds_the_leader(etcd1: EtcdCluster) -> None:
    report = grpc_run(etcd1.endpoints, "put", "--total=20", target_leader=True)
    assert report["config"]["endpoints"] == etcd1.endpoints
    assert report["succeeded"] == 20


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_report_states_the_generators_own_cpu_per_request(
    etcd1: EtcdCluster, protocol: str
) -> None:
    code, report = run_load(load_argv(etcd1.endpoints, "put", "--total=100", protocol=protocol))
    assert code == 0
    assert report["config"]["protocol"] == protocol
    assert report["client_cpu_seconds"] > 0
    cpu = report["client_cpu_us_per_request"]
    assert cpu == pytest.approx(1e6 * report["client_cpu_seconds"] / report["sent"])


@pytest.mark.parametrize(
    ("val_size", "code", "message"),
    [
        (TOO_LARGE, GRPC_INVALID_ARGUMENT, "etcdserver: request is too large"),
        (OVER_GRPC_LIMIT, GRPC_RESOURCE_EXHAUSTED, "larger than max"),
    ],
)
def test_too_large_puts_are_counted_as_too_large_with_etcds_code(
    etcd1: EtcdCluster, val_size: int, code: int, message: str
) -> None:
    report = grpc_run(etcd1.endpoints, "put", "--total=3", f"--val-size={val_size}")
    assert report["errors"]["too_large"] == report["failed"] == 3

    async def one_put() -> EtcdError:
        cfg = LoadConfig(workload="put", endpoints=tuple(etcd1.endpoints), val_size=val_size)
        conn = GrpcConn(etcd1.endpoints[0], KeySpace(cfg), timeout=5.0)
        try:
            with pytest.raises(EtcdError) as caught:
                await conn.put(0)
            return caught.value
        finally:
            await conn.close()

    error = run_async(one_put())
    assert (error.kind, error.code) == ("too_large", code)
    assert message in error.message


def test_a_compacted_revision_read_gets_out_of_range_and_etcds_message(
    etcd1: EtcdCluster,
) -> None:
    async def read_compacted() -> EtcdError:
        keys = KeySpace(LoadConfig(workload="range", endpoints=tuple(etcd1.endpoints)))
        conn = GrpcConn(etcd1.endpoints[0], keys, timeout=5.0)
        try:
            first = await conn.put_revision(0)
            last = await conn.put_revision(0)
            await unary(conn.kv_stub.Compact(rpc_pb2.CompactionRequest(revision=last)))
            request = rpc_pb2.RangeRequest(key=keys.key(0), revision=first)
            with pytest.raises(EtcdError) as caught:
                await unary(conn.kv_stub.Range(request, timeout=5.0))
            return caught.value
        finally:
            await conn.close()

    error = run_async(read_compacted())
    assert error.code == GRPC_OUT_OF_RANGE
    assert error.message == "etcdserver: mvcc: required revision has been compacted"
    assert error.kind == "other"


def test_a_closed_port_over_grpc_is_counted_as_connection_refused(etcd1: EtcdCluster) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    report = grpc_run(
        [etcd1.endpoints[0], closed], "put", "--total=200", conns=2, clients=4, timeout="2s"
    )
    assert report["errors"]["conn_refused"] > 0
    assert report["succeeded"] > 0
    assert report["succeeded"] + report["failed"] == report["sent"] == 200


def test_grpc_load_against_a_raftmon_member(raftmon1: LocalCluster) -> None:
    """The same gRPC load tool on raftmon's own gRPC server (one port with the gateway)."""
    for workload, extra in (("put", []), ("range", ["--prefill"])):
        grpc_run_without_errors(raftmon1.endpoints, workload, "--key-space-size=20", *extra)


def test_workers_share_a_grpc_run_and_their_cpu_adds_up(etcd1: EtcdCluster) -> None:
    report = grpc_run(etcd1.endpoints, "put", "--total=200", workers=2, clients=4, conns=2)
    assert (report["succeeded"], report["failed"], report["config"]["workers"]) == (200, 0, 2)
    assert report["client_cpu_seconds"] > 0


def test_grpc_over_tls_with_etcds_client_certificate_flags(tmp_path: Path) -> None:
    authority = make_authority(tmp_path / "ca")
    etcd = EtcdCluster(require_tool("etcd"), tmp_path / "etcd", 1, FAST, authority)
    with etcd:
        assert etcd.endpoints[0].startswith("https://")
        c = authority.client
        tls = {"cacert": authority.ca.cert_file, "cert": c.cert_file, "key": c.key_file}
        report = grpc_run(etcd.endpoints, "put", "--total=50", target_leader=True, **tls)
    assert (report["succeeded"], report["failed"]) == (50, 0)
