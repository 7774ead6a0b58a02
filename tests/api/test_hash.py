"""Hash and HashKV over HTTP as etcd 3.4 serves them: the gateway's POST
/v3/maintenance/hash (Maintenance.Hash) and the peer URL's GET /members/hashkv."""

from __future__ import annotations

import json

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from tests.cluster.etcdjson import call, http_text, put

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


def test_peer_hashkv_endpoint_answers_as_etcds(raftmon1: LocalCluster, etcd1: EtcdCluster) -> None:
    """GET /members/hashkv on the peer URL, which etcd's corruption check asks."""
    answers = {}
    for name, cluster in (("raftmon", raftmon1), ("etcd", etcd1)):
        peer = cluster.members[0].peer_url + "/members/hashkv"
        client = cluster.members[0].client_url
        rev = int(call(client, "/v3/maintenance/status", {})["header"]["revision"])
        status, text = http_text(peer, "GET", json.dumps({"revision": rev}).encode())
        assert status == 200, (name, text)
        answers[name] = (rev, json.loads(text))
        status, _ = http_text(peer, "POST", b"{}")
        assert status == 405, name  # GET only, as etcd's handler
    for name, (rev, answer) in answers.items():
        assert set(answer) == {"header", "hash", "compact_revision"}, (name, answer)
        assert answer["header"] == {"revision": rev}, (name, answer)  # numbers, not strings
        assert answer["compact_revision"] == -1, (name, answer)  # never compacted
        assert isinstance(answer["hash"], int), (name, answer)
