"""POST /v3/maintenance/hash: etcd 3.4's gateway serves Maintenance.Hash there."""

from __future__ import annotations

import pytest

from tests.cluster.etcdjson import call, put

pytestmark = [pytest.mark.tools]


def test_gateway_hash_answers_etcds_hash(both: dict[str, str]) -> None:
    answers = {}
    for name, url in both.items():
        for i in range(3):
            assert "error" not in put(url, f"/hash/{i}", f"v{i}")
        # a revision in the body is ignored: HashKV is declared at the same path, Hash wins
        answers[name] = [
            call(url, "/v3/maintenance/hash", body) for body in ({}, {"revision": "2"})
        ]
    for name, (plain, with_revision) in answers.items():
        assert set(plain) == {"header", "hash"}, (name, plain)
        assert set(plain["header"]) == {"cluster_id", "member_id", "revision", "raft_term"}
        assert isinstance(plain["hash"], int), (name, plain)  # uint32: a JSON number
        assert 0 < plain["hash"] < 2**32
        assert plain["header"]["revision"] == "4", (name, plain)  # int64: a string
        assert with_revision == plain, (name, with_revision)
