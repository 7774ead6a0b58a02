"""gRPC and the JSON gateway on one client port, counted alike in grpc_server_*.

etcd serves both protocols on each client URL and counts a gateway call in the
grpc_server_* families too (its gateway is an in-process gRPC client); a member does
both the same way. The metrics test runs on raftmon1 and on etcd1 with one expectation.
"""

from __future__ import annotations

import base64
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.procs import http_json
from tests.api.grpc.conftest import Etcd
from tests.api.grpc.wire import Session, T

pytestmark = [pytest.mark.tools]


@dataclass
class Member:
    """A member's stubs, its client URL (gateway) and where its /metrics are."""

    grpc: Etcd
    client_url: str
    metrics_url: str


@pytest.fixture(params=["raftmon", "etcd"])
def member(request: pytest.FixtureRequest) -> Member:
    if request.param == "raftmon":
        raftmon: LocalCluster = request.getfixturevalue("raftmon1")
        m = raftmon.members[0]
        return Member(request.getfixturevalue("raftmon_grpc"), m.client_url, m.metrics_url)
    etcd: EtcdCluster = request.getfixturevalue("etcd1")
    e = etcd.members[0]
    return Member(request.getfixturevalue("etcd_grpc"), e.client_url, e.metrics_url)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _gateway(member: Member, path: str, body: dict[str, Any]) -> Any:
    return http_json(member.client_url + path, body, timeout=T)


def test_grpc_and_the_gateway_answer_on_one_port_at_once(
    raftmon1: LocalCluster, raftmon_grpc: Etcd
) -> None:
    """A gRPC watch stream stays open while gateway puts and gRPC ranges run beside it."""
    url = raftmon1.members[0].client_url
    rounds = 20
    failures: list[BaseException] = []

    def gateway_puts() -> None:
        try:
            for i in range(rounds):
                body = {"key": _b64(b"/port/k%d" % i), "value": _b64(b"gw")}
                assert "header" in http_json(url + "/v3/kv/put", body, timeout=T)
        except BaseException as err:  # reported by the main thread
            failures.append(err)

    with Session[pb.WatchRequest, pb.WatchResponse](raftmon_grpc.watch.Watch) as stream:
        create = pb.WatchCreateRequest(key=b"/port/", range_end=b"/port0")
        stream.send(pb.WatchRequest(create_request=create))
        assert stream.recv().created
        writer = threading.Thread(target=gateway_puts)
        writer.start()
        for _ in range(rounds):  # gRPC unary calls on the same port meanwhile
            raftmon_grpc.kv.Range(pb.RangeRequest(key=b"/port/", range_end=b"/port0"), timeout=T)
        writer.join(timeout=60)
        assert not failures, failures
        seen: list[bytes] = []
        while len(seen) < rounds:
            seen.extend(e.kv.key for e in stream.recv().events)
    assert seen == [b"/port/k%d" % i for i in range(rounds)]
    with urllib.request.urlopen(url + "/health", timeout=T) as health:  # plain HTTP/1.1 too
        assert health.status == 200


def _samples(member: Member) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(member.metrics_url + "/metrics", timeout=T) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("grpc_server_")
        for s in family.samples
    }


def _count(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _range_counts(member: Member, code: str) -> tuple[float, float]:
    samples = _samples(member)
    labels = {"grpc_service": "etcdserverpb.KV", "grpc_method": "Range", "grpc_type": "unary"}
    return (
        _count(samples, "grpc_server_started_total", **labels),
        _count(samples, "grpc_server_handled_total", grpc_code=code, **labels),
    )


@pytest.mark.parametrize("via", ["grpc", "gateway"])
def test_a_range_counts_once_in_started_and_handled_ok(member: Member, via: str) -> None:
    before = _range_counts(member, "OK")
    if via == "grpc":
        member.grpc.kv.Range(pb.RangeRequest(key=b"/metrics/k"), timeout=T)
    else:
        assert "header" in _gateway(member, "/v3/kv/range", {"key": _b64(b"/metrics/k")})
    after = _range_counts(member, "OK")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


@pytest.mark.parametrize("via", ["grpc", "gateway"])
def test_a_refused_range_counts_under_its_grpc_code(member: Member, via: str) -> None:
    before = _range_counts(member, "InvalidArgument")
    if via == "grpc":
        with pytest.raises(grpc.RpcError, match="key is not provided"):
            member.grpc.kv.Range(pb.RangeRequest(), timeout=T)
    else:
        assert _gateway(member, "/v3/kv/range", {})["code"] == 3
    after = _range_counts(member, "InvalidArgument")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_watch_stream_counts_as_a_bidi_stream(member: Member) -> None:
    labels = {"grpc_service": "etcdserverpb.Watch", "grpc_method": "Watch"}
    stream_labels = {**labels, "grpc_type": "bidi_stream"}
    before = _count(_samples(member), "grpc_server_started_total", **stream_labels)
    with Session[pb.WatchRequest, pb.WatchResponse](member.grpc.watch.Watch) as stream:
        stream.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"/metrics/w")))
        assert stream.recv().created
        after = _samples(member)
    assert _count(after, "grpc_server_started_total", **stream_labels) - before == 1
    assert _count(after, "grpc_server_msg_received_total", **stream_labels) >= 1
