"""grpc_server_handling_seconds on a live member: --metrics=extensive times every call.

A member started with etcd's `--metrics=extensive` is called over gRPC (grpcio's client,
the stubs of etcdproto.gen) and over the JSON gateway; its /metrics must then count
each finished call once, whichever front end it came through (etcd's gateway calls go
through its gRPC server, so etcd counts them there too). A default member has no such
family, as etcd. Finally a real Prometheus scrapes the member and the upstream etcd
mixin's etcdGRPCRequestsSlow expression evaluates on raftmon's series.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.etcdserverpb import rpc_pb2_grpc
from lab.cluster import LocalCluster
from tests.alerts.web import request, serving
from tests.cluster.etcdjson import call, get, http_text, wait_until
from tests.helpers import free_port, running_cluster

pytestmark = pytest.mark.cluster

FAMILY = "grpc_server_handling_seconds"
RANGE = {"grpc_method": "Range", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
PUT = {"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
STATUS = {"grpc_method": "Status", "grpc_service": "etcdserverpb.Maintenance", "grpc_type": "unary"}
WATCH = {"grpc_method": "Watch", "grpc_service": "etcdserverpb.Watch", "grpc_type": "bidi_stream"}
SNAPSHOT = {
    "grpc_method": "Snapshot",
    "grpc_service": "etcdserverpb.Maintenance",
    "grpc_type": "server_stream",
}
KEEPALIVE = {
    "grpc_method": "LeaseKeepAlive",
    "grpc_service": "etcdserverpb.Lease",
    "grpc_type": "bidi_stream",
}

# The upstream mixin's etcdGRPCRequestsSlow, left-hand side (threshold cut off), at etcd
# v3.4.23 (Documentation/etcd-mixin) and at etcd main (contrib/mixin, as kube-prometheus
# pins it); the job selector matches the scrape job below.
UPSTREAM_SLOW_GRPC = {
    "v3.4.23": (
        'histogram_quantile(0.99, sum(rate(grpc_server_handling_seconds_bucket{job=~".*etcd.*",'
        ' grpc_type="unary"}[5m])) by (job, instance, grpc_service, grpc_method, le))'
    ),
    "main": (
        'histogram_quantile(0.99, sum(rate(grpc_server_handling_seconds_bucket{job=~".*etcd.*",'
        ' grpc_method!="Defragment", grpc_type="unary"}[5m])) without(grpc_type))'
    ),
}
READY_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def extensive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One member with etcd's --metrics=extensive."""
    base = tmp_path_factory.mktemp("extensive")
    with running_cluster(base, 1, ["--metrics=extensive"]) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kv(extensive: LocalCluster) -> Iterator[rpc_pb2_grpc.KVStub]:
    with grpc.insecure_channel(urlsplit(extensive.endpoints[0]).netloc) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield rpc_pb2_grpc.KVStub(channel)


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the member's /metrics, by (name, sorted labels)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count(url: str, labels: dict[str, str], le: str | None = None) -> float:
    """The method's call count (or one bucket), 0 before the family has it: NaN if absent."""
    found = samples(url)
    if le is None:
        return found.get((f"{FAMILY}_count", tuple(sorted(labels.items()))), math.nan)
    key = (f"{FAMILY}_bucket", tuple(sorted({**labels, "le": le}.items())))
    return found.get(key, math.nan)


def test_every_method_is_pre_initialised_at_zero(extensive: LocalCluster) -> None:
    found = samples(extensive.members[0].metrics_url)
    methods = {labels for name, labels in found if name == f"{FAMILY}_count"}
    assert len(methods) >= 41  # etcd's 41, plus any method raftmon serves beyond them
    assert tuple(sorted(WATCH.items())) in methods


def test_grpc_and_gateway_ranges_are_each_observed_once(
    extensive: LocalCluster, kv: rpc_pb2_grpc.KVStub
) -> None:
    member = extensive.members[0]
    before = count(member.metrics_url, RANGE)
    before_inf = count(member.metrics_url, RANGE, "+Inf")
    before_put = count(member.metrics_url, PUT)
    kv.Put(pb.PutRequest(key=b"handling/a", value=b"1"), timeout=10)
    for _ in range(7):
        kv.Range(pb.RangeRequest(key=b"handling/a"), timeout=10)
    with pytest.raises(grpc.RpcError) as failed:  # a failed call is timed too
        kv.Range(pb.RangeRequest(key=b"handling/a", revision=10**9), timeout=10)
    assert failed.value.code() == grpc.StatusCode.OUT_OF_RANGE
    for _ in range(5):
        assert "error" not in get(member.client_url, "handling/a")
    assert count(member.metrics_url, RANGE) - before == 13
    assert count(member.metrics_url, RANGE, "+Inf") - before_inf == 13
    assert count(member.metrics_url, PUT) - before_put == 1


def test_a_call_etcd_does_not_time_elsewhere_is_timed_here(extensive: LocalCluster) -> None:
    """Status has no etcd_server_request_duration_seconds type; it still gets a handling time."""
    member = extensive.members[0]
    before = count(member.metrics_url, STATUS)
    assert "header" in call(member.client_url, "/v3/maintenance/status", {})
    assert count(member.metrics_url, STATUS) - before == 1


def test_streams_are_observed_once_when_they_end(extensive: LocalCluster) -> None:
    member = extensive.members[0]
    url = member.metrics_url
    watch_before, keepalive_before = count(url, WATCH), count(url, KEEPALIVE)
    done = threading.Event()

    def requests() -> Iterator[pb.WatchRequest]:  # the client keeps its side open
        yield pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"handling/"))
        done.wait(30)

    with grpc.insecure_channel(urlsplit(member.client_url).netloc) as channel:
        stub = rpc_pb2_grpc.WatchStub(channel)
        stream = stub.Watch(requests(), timeout=30)
        try:
            assert next(stream).created
            assert count(url, WATCH) == watch_before  # still open: nothing observed yet
            stream.cancel()
        finally:
            done.set()
        wait_until(lambda: count(url, WATCH) - watch_before == 1, timeout=10, what="watch end")
    lease = call(member.client_url, "/v3/lease/grant", {"TTL": "60"})["ID"]
    answered = call(member.client_url, "/v3/lease/keepalive", {"ID": lease})
    assert "error" not in answered, answered
    wait_until(lambda: count(url, KEEPALIVE) - keepalive_before == 1, timeout=10, what="k-a end")


def test_a_snapshot_stream_is_observed_once_per_front_end(extensive: LocalCluster) -> None:
    member = extensive.members[0]
    before = count(member.metrics_url, SNAPSHOT)
    with grpc.insecure_channel(urlsplit(member.client_url).netloc) as channel:
        stub = rpc_pb2_grpc.MaintenanceStub(channel)
        chunks = list(stub.Snapshot(pb.SnapshotRequest(), timeout=30))
    assert chunks
    status, text = http_text(member.client_url + "/v3/maintenance/snapshot", "POST", b"{}")
    assert status == 200, text[:200]
    wait_until(
        lambda: count(member.metrics_url, SNAPSHOT) - before == 2, timeout=10, what="snapshots"
    )


def test_a_default_member_has_no_handling_histogram(raftmon1: LocalCluster) -> None:
    """etcd's --metrics=basic default: the family is absent, its neighbours are there."""
    member = raftmon1.members[0]
    assert "error" not in get(member.client_url, "handling/a")
    names = {name for name, _ in samples(member.metrics_url)}
    assert not any(name.startswith(FAMILY) for name in names)
    assert "grpc_server_handled_total" in names


@pytest.mark.tools
def test_upstream_mixins_slow_grpc_expression_evaluates_on_our_series(
    extensive: LocalCluster, kv: rpc_pb2_grpc.KVStub, tmp_path: Path
) -> None:
    """A real Prometheus scrapes the member while it serves ranges; the upstream
    etcdGRPCRequestsSlow query then has a finite p99 for KV/Range (whatever its value)."""
    member = extensive.members[0]
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "etcd",
                "static_configs": [{"targets": [member.metrics_url.removeprefix("http://")]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
    flags = [
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
    ]
    stop = threading.Event()

    def load() -> None:  # a few ranges a second, gRPC and gateway, until told to stop
        for _ in range(int(READY_TIMEOUT_S * 2 / 0.05)):
            if stop.wait(0.05):
                return
            kv.Range(pb.RangeRequest(key=b"handling/a"), timeout=10)
            get(member.client_url, "handling/a")

    def p99(expr: str) -> float | None:
        status, body = request(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert status == 200, body
        for series in json.loads(body)["data"]["result"]:
            labels = series["metric"]
            if (
                labels.get("grpc_method") == "Range"
                and labels.get("grpc_service") == RANGE["grpc_service"]
            ):
                value = float(series["value"][1])
                return value if math.isfinite(value) else None
        return None

    loader = threading.Thread(target=load, daemon=True)
    with serving("prometheus", port, flags, tmp_path, READY_TIMEOUT_S) as base:
        loader.start()
        try:
            for source, expr in UPSTREAM_SLOW_GRPC.items():
                value = wait_until(
                    lambda expr=expr: p99(expr), timeout=30, interval=0.5, what=source
                )
                assert 0 < value <= 10, (source, value)  # within the DefBuckets
        finally:
            stop.set()
            loader.join(15)
