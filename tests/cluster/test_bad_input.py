"""Bad input gets etcd's error, in etcd's JSON shape and status, and changes nothing."""

from __future__ import annotations

import base64
import json

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import b64, call, post_status, revision

pytestmark = pytest.mark.cluster

MIB = 1024 * 1024


def big_put(size: int) -> bytes:
    value = base64.b64encode(b"x" * size).decode()
    return json.dumps({"key": b64("big"), "value": value}).encode()


CASES = [
    ("malformed JSON", "/v3/kv/put", b'{"key":', 400, 3, "unexpected EOF"),
    (
        "malformed JSON, bad key",
        "/v3/kv/put",
        b"{key:1}",
        400,
        3,
        "invalid character 'k' looking for beginning of object key string",
    ),
    (
        "invalid base64",
        "/v3/kv/put",
        b'{"key":"!!!","value":"YmFy"}',
        400,
        3,
        "illegal base64 data at input byte 0",
    ),
    (
        "empty key",
        "/v3/kv/put",
        b'{"key":"","value":"YmFy"}',
        400,
        3,
        "etcdserver: key is not provided",
    ),
    (
        "lease not found",
        "/v3/kv/put",
        b'{"key":"Zm9v","value":"YmFy","lease":"12345"}',
        404,
        5,
        "etcdserver: requested lease not found",
    ),
    (
        "revoke unknown lease",
        "/v3/lease/revoke",
        b'{"ID":424242}',
        404,
        5,
        "etcdserver: requested lease not found",
    ),
    (
        "future revision",
        "/v3/kv/range",
        b'{"key":"Zm9v","revision":"100000"}',
        400,
        11,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    ("bad int64", "/v3/kv/range", b'{"key":"Zm9v","revision":"soon"}', 400, 3, None),
    ("not an object", "/v3/kv/put", b"[1,2]", 400, 3, None),
    (
        "value over --max-request-bytes",
        "/v3/kv/put",
        big_put(int(1.6 * MIB)),
        400,
        3,
        "etcdserver: request is too large",
    ),
    ("value over the gRPC message limit", "/v3/kv/put", big_put(2 * MIB), 429, 8, None),
    (
        "unknown transfer target",
        "/v3/maintenance/transfer-leadership",
        b'{"targetID":"77"}',
        412,
        9,
        "etcdserver: bad leader transferee",
    ),
    ("unknown path", "/v3/kv/nonsense", b"{}", 404, 5, None),
]


@pytest.mark.parametrize(
    ("title", "path", "body", "status", "code", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_answers_etcds_error_and_changes_nothing(
    cluster3: LocalCluster,
    title: str,
    path: str,
    body: bytes,
    status: int,
    code: int,
    message: str | None,
) -> None:
    url = cluster3.members[0].client_url
    before = revision(url)
    keys_before = call(
        url, "/v3/kv/range", {"key": "AA==", "range_end": "AA==", "count_only": True}
    )
    got_status, got = post_status(url + path, body)
    assert got_status == status, got
    assert got["code"] == code, got
    assert got["error"] == got["message"]
    if message is not None:
        assert got["error"] == message
    assert revision(url) == before
    keys_after = call(url, "/v3/kv/range", {"key": "AA==", "range_end": "AA==", "count_only": True})
    assert keys_after.get("count") == keys_before.get("count")
