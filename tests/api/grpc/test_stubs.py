"""The committed stubs are exactly what `python -m node.api.grpc.generate` makes now."""

from __future__ import annotations

from pathlib import Path

from node.api.grpc import generate


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    assert _tree(generate.GEN_DIR) == _tree(tmp_path), (
        "stale stubs: run `python -m node.api.grpc.generate` and commit node/api/grpc/gen"
    )


def test_generated_modules_import_as_a_package() -> None:
    from node.api.grpc.gen.etcdserverpb import rpc_pb2
    from node.api.grpc.gen.v3electionpb import v3election_pb2

    # The method paths clients dial depend on etcd's package names staying as they are.
    assert rpc_pb2.DESCRIPTOR.services_by_name["KV"].full_name == "etcdserverpb.KV"
    leader = v3election_pb2.LeaderResponse.DESCRIPTOR.fields_by_name["kv"]
    assert leader.message_type.full_name == "mvccpb.KeyValue"
