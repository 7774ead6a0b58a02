"""Maintenance.Snapshot over gRPC, and `etcdctl snapshot save` into `raftmon snapshot restore`.

The same checks run against etcd 3.4 (proving them) and against raftmon.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.etcdserverpb import rpc_pb2_grpc
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from tests.helpers import require_tool

pytestmark = [pytest.mark.tools]
T = 30.0  # seconds: every call is bounded
BLOB = 32 * 1024

IMPLEMENTATIONS = ["etcd", "raftmon"]


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> str:
    """host:port of etcd1 or raftmon1 (gRPC and the gateway share the client URL)."""
    member: EtcdCluster | LocalCluster = request.getfixturevalue(
        "etcd1" if request.param == "etcd" else "raftmon1"
    )
    return urlsplit(member.endpoints[0]).netloc


def _fill(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    for i in range(12):
        kv.Put(pb.PutRequest(key=b"/snap-grpc/%02d" % i, value=b"v" * 10_000), timeout=T)


@pytest.mark.parametrize("endpoint", IMPLEMENTATIONS, indirect=True)
def test_snapshot_stream_is_blobs_counted_down_then_their_sha256(endpoint: str) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        _fill(channel)
        stream = rpc_pb2_grpc.MaintenanceStub(channel).Snapshot(pb.SnapshotRequest(), timeout=T)
        *data, trailer = list(stream)
    image = b"".join(m.blob for m in data)
    assert len(data) >= 4
    assert all(len(m.blob) == BLOB for m in data[:-1])
    left = len(image)
    for m in data:
        left -= len(m.blob)
        assert m.remaining_bytes == left
    assert trailer.remaining_bytes == 0
    assert trailer.blob == hashlib.sha256(image).digest()
    assert not trailer.HasField("header")  # etcd 3.4 sends none


def test_etcdctl_snapshot_save_then_raftmon_restore(raftmon1: LocalCluster, tmp_path: Path) -> None:
    etcdctl = require_tool("etcdctl")
    saved = tmp_path / "saved.db"
    out = subprocess.run(
        [etcdctl, f"--endpoints={raftmon1.endpoints[0]}", "snapshot", "save", str(saved)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ETCDCTL_API": "3"},
    )
    assert out.returncode == 0, out.stderr
    assert f"Snapshot saved at {saved}" in out.stdout
    restored = subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "snapshot",
            "restore",
            str(saved),
            f"--data-dir={tmp_path / 'restored'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "restored" / "member" / "snap" / "db").is_file()
