"""The member imports its gRPC side after its Raft node runs, and still serves gRPC.

Three members restarted together share two cores, and the gRPC side (protobuf's runtime,
etcd's stubs, HTTP/2: ~75 ms of CPU) is needed only once the client listener opens. So
`node.member.serve` does not import it; `serve()` imports it in a thread while the first
election runs. These tests pin both halves: the start's imports leave it out, and a
member's very first client call, over gRPC, is answered.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from etcdproto.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from node.member import serve as serve_module
from tests.helpers import running_cluster


def test_the_member_start_does_not_import_the_grpc_side() -> None:
    code = (
        "import sys, node.member, node.member.serve; "
        f"print({serve_module.CLIENT_SIDE_MODULE!r} in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_imported_client_side_is_the_grpc_endpoint() -> None:
    from node.api.grpc import GrpcEndpoint

    assert serve_module._import_client_side() is GrpcEndpoint


def test_a_restarted_member_answers_its_first_call_over_grpc(tmp_path: Path) -> None:
    with running_cluster(tmp_path, 1) as cluster:
        name = cluster.members[0].name
        cluster.kill(name)  # kill -9, as the restart bench does
        cluster.restart(name)
        target = urlsplit(cluster.endpoints[0]).netloc
        with grpc.insecure_channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            kv = rpc_pb2_grpc.KVStub(channel)
            kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=30)
            got = kv.Range(rpc_pb2.RangeRequest(key=b"k"), timeout=30)
    assert [(kv_.key, kv_.value) for kv_ in got.kvs] == [(b"k", b"v")]
