"""A gRPC channel to one real etcd 3.4 member, for proving the stubs on the wire.

`etcd1` comes from tests/conftest.py (under CI=true a missing etcd fails, else skips).
`server` runs a test once against raftmon1 and once against etcd1, so every assertion
about etcd's behaviour is proven on etcd itself and demanded of raftmon.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2_grpc
from etcdproto.gen.v3electionpb import v3election_pb2_grpc
from etcdproto.gen.v3lockpb import v3lock_pb2_grpc
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster


@dataclass
class Etcd:
    """One stub per etcd service, all on the same channel to etcd1."""

    kv: rpc_pb2_grpc.KVStub
    watch: rpc_pb2_grpc.WatchStub
    lease: rpc_pb2_grpc.LeaseStub
    cluster: rpc_pb2_grpc.ClusterStub
    maintenance: rpc_pb2_grpc.MaintenanceStub
    lock: v3lock_pb2_grpc.LockStub
    election: v3election_pb2_grpc.ElectionStub
    channel: grpc.Channel | None = None  # for calls no stub declares


@pytest.fixture(scope="module")
def etcd_grpc(etcd1: EtcdCluster) -> Iterator[Etcd]:
    """Stubs over an insecure channel to etcd1's client URL (gRPC and gateway share it)."""
    with grpc.insecure_channel(urlsplit(etcd1.endpoints[0]).netloc) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield stubs(channel)


# ---- the same scenario against raftmon and etcd ------------------------------------------


def stubs(channel: grpc.Channel) -> Etcd:
    """One stub per etcd service on `channel` (raftmon's member serves the same services)."""
    return Etcd(
        kv=rpc_pb2_grpc.KVStub(channel),
        watch=rpc_pb2_grpc.WatchStub(channel),
        lease=rpc_pb2_grpc.LeaseStub(channel),
        cluster=rpc_pb2_grpc.ClusterStub(channel),
        maintenance=rpc_pb2_grpc.MaintenanceStub(channel),
        lock=v3lock_pb2_grpc.LockStub(channel),
        election=v3election_pb2_grpc.ElectionStub(channel),
        channel=channel,
    )


@pytest.fixture(scope="module")
def raftmon_grpc(raftmon1: LocalCluster) -> Iterator[Etcd]:
    """Stubs over an insecure channel to raftmon1's client URL (gRPC beside the gateway)."""
    with grpc.insecure_channel(urlsplit(raftmon1.endpoints[0]).netloc) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield stubs(channel)


@pytest.fixture(params=["raftmon", "etcd"])
def server(request: pytest.FixtureRequest) -> Etcd:
    """raftmon1's stubs, then etcd1's: a test taking `server` asserts etcd's behaviour of both."""
    fixture = "raftmon_grpc" if request.param == "raftmon" else "etcd_grpc"
    return cast("Etcd", request.getfixturevalue(fixture))
