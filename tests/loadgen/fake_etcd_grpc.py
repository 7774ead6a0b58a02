"""A trivial etcd-shaped gRPC endpoint: KV.Put answers at once with the next revision.

The gRPC twin of `tests.loadgen.fake_etcd` for the generator benchmark: how many
requests/s one worker produces over `--protocol grpc` when the server costs almost
nothing (grpcio's C-core server; Python runs only the handler). Run it as its own
process: `python -m tests.loadgen.fake_etcd_grpc PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc

from etcdproto.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc


class FixedKV(rpc_pb2_grpc.KVServicer):
    """Every Put succeeds with the next revision; nothing is stored."""

    def __init__(self) -> None:
        self.revision = 1

    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        self.revision += 1
        header = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=self.revision)
        return rpc_pb2.PutResponse(header=header)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(FixedKV(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str]) -> int:
    """Serve the fake on PORT until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    asyncio.run(serve(parser.parse_args(argv).port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
