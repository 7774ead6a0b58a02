"""The request/response pairs captured from real etcd 3.4.23 (tests/reference/), replayed.

A fresh single-member raftmon cluster receives the same requests in the same
order; every response must have the same HTTP status, the same fields with the
same JSON types, and the same values wherever etcd's are deterministic
(revisions, versions, keys, values, counts, errors). Identity fields
(cluster_id, member_id), raft_term and the sizes of the database differ by
nature and are compared by type only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import http_text

pytestmark = pytest.mark.cluster

REFERENCE = Path(__file__).parents[1] / "reference" / "etcd-3.4-gateway-examples.md"
TYPE_ONLY = {
    "cluster_id",
    "member_id",
    "raft_term",
    "dbSize",
    "dbSizeInUse",
    "leader",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "TTL",
    "ID",
    "name",
    "peerURLs",
    "clientURLs",
}
BLOCK = re.compile(
    r"### (?P<title>.+?)\n```\nPOST (?P<path>\S+)\n(?P<body>.*?)\n--->\n"
    r"(?P<resp>.*?)\nHTTP (?P<status>\d+)\n```",
    re.S,
)


def examples() -> list[tuple[str, str, str, str, int]]:
    out = []
    for m in BLOCK.finditer(REFERENCE.read_text()):
        resp = m["resp"].strip()
        if not resp.startswith("{") or m["path"].startswith("/v3alpha"):
            continue  # plain-text answers (unknown paths) are checked elsewhere
        out.append((m["title"], m["path"], m["body"], resp, int(m["status"])))
    return out


def post(url: str, body: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    first = raw.decode().strip().splitlines()[0] if raw.strip() else "{}"
    return status, json.loads(first)


def same_shape(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Differences in fields, types and deterministic values."""
    problems: list[str] = []
    if type(ours) is not type(theirs):
        return [f"{path}: type {type(ours).__name__} != {type(theirs).__name__}"]
    if isinstance(theirs, dict):
        if set(ours) != set(theirs):
            problems.append(f"{path}: fields {sorted(ours)} != {sorted(theirs)}")
        for key in set(ours) & set(theirs):
            if key in TYPE_ONLY and not isinstance(theirs[key], list):
                if type(ours[key]) is not type(theirs[key]):
                    problems.append(f"{path}.{key}: type differs")
                continue
            problems += same_shape(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} items != {len(theirs)}"]
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            problems += same_shape(a, b, f"{path}[{i}]")
    elif ours != theirs and path.rsplit(".", 1)[-1].split("[")[0] not in TYPE_ONLY:
        problems.append(f"{path}: {ours!r} != {theirs!r}")
    return problems


def test_every_captured_etcd_response_is_reproduced(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(1)
    url = cluster.members[0].client_url
    cases = examples()
    assert len(cases) >= 25, "the reference file did not parse"
    failures = []
    for title, path, body, expected, status in cases:
        got_status, got = post(url + path, body)
        diff = same_shape(got, json.loads(expected))
        if got_status != status:
            diff.insert(0, f"HTTP {got_status} != {status}")
        if diff:
            failures.append(f"{title}: {diff}\n   ours: {got}")
    assert not failures, "\n".join(failures)


def test_plain_text_answers_match_etcds(cluster3: LocalCluster) -> None:
    # The reference's plain-text blocks: /v3alpha is gone in 3.4 (Go's mux answers), a GET
    # on a POST-only path gets grpc-gateway's 405. The gateway's own unknown paths answer
    # etcd's JSON error (test_bad_input).
    url = cluster3.members[0].client_url
    text = REFERENCE.read_text()
    assert "404 page not found" in text
    assert "Method Not Allowed" in text
    assert http_text(url + "/v3alpha/kv/range", "POST", b'{"key":"Zm9v"}') == (
        404,
        "404 page not found\n",
    )
    assert http_text(url + "/no/such/thing", "GET") == (404, "404 page not found\n")
    assert http_text(url + "/v3/kv/put", "GET") == (405, "Method Not Allowed\n")
    status, body = http_text(url + "/v3beta/kv/nothing", "POST", b"{}")
    assert status == 404
    assert json.loads(body)["code"] == 5
