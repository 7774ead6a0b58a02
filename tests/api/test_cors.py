"""CORS on the client URLs as etcd 3.4 answers it: preflights, headers, --cors.

Measured side by side: the same requests to raftmon and to etcd get the same status,
the same Access-Control-* headers and (for a preflight) the same empty answer.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lab.etcd_cluster import EtcdCluster
from node.config import ConfigError, parse_config
from node.member.cors import allowed_origin
from tests.helpers import FAST, require_tool, running_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.tools]

ALLOWED = "http://allowed.example:8080"

# (method, path, body, Origin header or None)
Request = tuple[str, str, bytes | None, str | None]
REQUESTS: list[Request] = [
    ("OPTIONS", "/v3/kv/put", None, None),
    ("OPTIONS", "/v3/kv/put", None, "http://x.example"),
    ("OPTIONS", "/v3/lock/lock", None, ALLOWED),
    ("OPTIONS", "/no/such/path", None, None),
    ("OPTIONS", "/health", None, None),
    ("POST", "/v3/kv/range", b'{"key":"Zm9v"}', None),
    ("POST", "/v3/kv/range", b'{"key":"Zm9v"}', ALLOWED),
    ("POST", "/v3/kv/range", b'{"key":"Zm9v"}', "http://other.example:8080"),
    ("POST", "/v3/election/leader", b'{"name":"Zm9v"}', ALLOWED),
    ("GET", "/health", None, "http://x.example"),
    ("PUT", "/v3/kv/put", b"{}", None),
    ("POST", "/v3/no/such/path", b"{}", ALLOWED),
]


def answer(url: str, req: Request) -> tuple[int, dict[str, str], bytes | None]:
    """(status, the Access-Control-* headers, and for a preflight its whole answer)."""
    method, path, body, origin = req
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        headers = {"Origin": origin} if origin else {}
        if method == "OPTIONS":
            headers["Access-Control-Request-Method"] = "POST"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        cors = {k: v for k, v in resp.getheaders() if k.lower().startswith("access-control-")}
        if method != "OPTIONS":
            return resp.status, cors, None
        typed = b"content-type:" + (resp.getheader("Content-Type") or "").encode()
        return resp.status, cors, typed + b" body:" + payload
    finally:
        conn.close()


def assert_same_answers(raftmon: str, etcd: str) -> None:
    for req in REQUESTS:
        assert answer(raftmon, req) == answer(etcd, req), req


def test_by_default_every_origin_is_allowed_as_etcd_allows_it(both: dict[str, str]) -> None:
    assert_same_answers(both["raftmon"], both["etcd"])
    status, cors, whole = answer(both["raftmon"], REQUESTS[0])
    assert (status, cors["Access-Control-Allow-Origin"], whole) == (
        200,
        "*",
        b"content-type: body:",
    )


def test_a_cors_list_allows_only_its_origins_as_etcd_does(tmp_path: Path) -> None:
    flag = f"--cors={ALLOWED}"
    etcd = EtcdCluster(require_tool("etcd"), tmp_path / "etcd", size=1, extra_args=[*FAST, flag])
    with running_cluster(tmp_path / "raftmon", 1, [flag]) as ours, etcd:
        assert_same_answers(ours.endpoints[0], etcd.endpoints[0])
        _, cors, _ = answer(ours.endpoints[0], REQUESTS[6])
        assert cors["Access-Control-Allow-Origin"] == ALLOWED
        assert answer(ours.endpoints[0], REQUESTS[7])[1] == {}


def test_origins_are_matched_as_etcd_matches_them() -> None:
    allow = frozenset({ALLOWED})
    assert allowed_origin(frozenset({"*"}), None) == "*"
    assert allowed_origin(frozenset(), "http://any.example") == "*"
    assert allowed_origin(allow, ALLOWED) == ALLOWED
    assert allowed_origin(allow, "http://allowed.example") is None  # the port is part of it
    assert allowed_origin(allow, None) is None


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("*", ("*",)),
        ("", ()),
        (
            "https://b.example:1,http://a.example:8080",
            ("http://a.example:8080", "https://b.example:1"),
        ),
    ],
)
def test_the_cors_flag_reads_as_etcds(raw: str, origins: tuple[str, ...]) -> None:
    assert parse_config([f"--cors={raw}"], environ={}).cors == origins
    assert parse_config([], environ={"ETCD_CORS": raw}).cors == origins


def test_the_cors_flag_defaults_to_every_origin() -> None:
    assert parse_config([], environ={}).cors == ("*",)


@pytest.mark.parametrize("raw", ["allowed.example", "http://a.example", "http://a.example:1/path"])
def test_a_cors_origin_that_is_not_a_url_with_a_port_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_config([f"--cors={raw}"], environ={})
