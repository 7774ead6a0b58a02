"""The stubs in gen/ are what `python -m etcdproto.generate` makes from today's .proto files."""

from __future__ import annotations

from pathlib import Path

from etcdproto import generate


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_stubs_are_made_from_todays_proto_files(tmp_path: Path) -> None:
    assert not generate.stale(), "stale stubs: run `make venv` (python -m etcdproto.generate)"
    generate.generate(tmp_path)
    assert _tree(generate.GEN_DIR) == _tree(tmp_path)
    (tmp_path / "__init__.py").write_text("# made from other .proto files\n")
    assert generate.stale(tmp_path)


def test_generated_modules_import_as_a_package() -> None:
    from etcdproto.gen.etcdserverpb import rpc_pb2
    from etcdproto.gen.v3electionpb import v3election_pb2

    # The method paths clients dial depend on etcd's package names staying as they are.
    assert rpc_pb2.DESCRIPTOR.services_by_name["KV"].full_name == "etcdserverpb.KV"
    leader = v3election_pb2.LeaderResponse.DESCRIPTOR.fields_by_name["kv"]
    assert leader.message_type.full_name == "mvccpb.KeyValue"
