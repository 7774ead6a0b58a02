"""Bad watch requests over the gateway, answered as etcd 3.4's gateway answers them.

etcd's answers were recorded against etcd 3.4.23 and are checked again here side by
side: the same body is sent to a raftmon member and to a real etcd member. etcd's
gateway (Go's HTTP/1.1 server) answers a watch only once the request body has
ended, so the side-by-side cases send whole bodies; raftmon also answers while the
body is still open, which the streaming cases use.
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.rawhttp import ChunkedPost
from tests.cluster.etcdjson import b64, put

pytestmark = pytest.mark.cluster

GRPC_LIMIT = 1572864 + 512 * 1024  # --max-request-bytes default + gRPC's overhead


def connect(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)


def post_whole(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST /v3/watch with a complete body; (status, first piece of the answer)."""
    conn = connect(url, timeout)
    try:
        conn.request("POST", "/v3/watch", body=body)
        resp = conn.getresponse()
        if resp.status == 200:
            return resp.status, resp.readline()  # a stream: the first message
        return resp.status, resp.read()
    finally:
        conn.close()


# (body, etcd's message) -- every one answered HTTP 500, code 2 (Unknown), stream closed
INVALID_FIRST = [
    (b'{"create_request":{"key":"!!!"}}', "illegal base64 data at input byte 0"),
    (
        b'{"create_request":"x"}',
        "json: cannot unmarshal string into Go value of type map[string]json.RawMessage",
    ),
    (
        b'{"create_request":{"key":5}}',
        "json: cannot unmarshal number into Go value of type []uint8",
    ),
    (b"[1,2]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
    (b'"x"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
    (
        b'{"cancel_request":"x"}',
        "json: cannot unmarshal string into Go value of type map[string]json.RawMessage",
    ),
    (b'{"create_request":{"key":"Zm9v", ', "unexpected EOF"),
    (b"xx", "invalid character 'x' looking for beginning of value"),
    # the field-level wording is the request codec's; the status and code are this path's
    (b'{"create_request":{"key":"Zm9v","start_revision":"x"}}', None),
    (b'{"create_request":{"key":"Zm9v","filters":["X"]}}', None),
]


@pytest.mark.parametrize(("body", "message"), INVALID_FIRST, ids=lambda v: str(v)[:40])
def test_an_invalid_first_watch_message_is_answered_as_etcd_answers_it(
    both: dict[str, str], body: bytes, message: str | None
) -> None:
    answers = {name: post_whole(url, body) for name, url in both.items()}
    for name, (status, raw) in answers.items():
        assert status == 500, (name, status, raw)
        err = json.loads(raw)
        assert err["code"] == 2, (name, err)
        assert err["error"] == err["message"], (name, err)
        if message is not None:
            assert err["message"] == message, (name, err)


def test_a_watch_message_above_the_grpc_limit_is_refused_as_etcd_refuses_it(
    both: dict[str, str],
) -> None:
    key = base64.b64encode(b"k" * (GRPC_LIMIT + 100)).decode()
    body = json.dumps({"create_request": {"key": key}}).encode()
    for name, url in both.items():
        status, raw = post_whole(url, body)
        assert status == 429, (name, status, raw[:200])
        assert json.loads(raw) == {
            "error": {
                "grpc_code": 8,
                "http_code": 429,
                "message": f"grpc: received message larger than max ({GRPC_LIMIT + 110} "
                f"vs. {GRPC_LIMIT})",
                "http_status": "Too Many Requests",
            }
        }, name
    # just under the limit is a watch like any other, on both
    small = base64.b64encode(b"k" * (GRPC_LIMIT - 200)).decode()
    for name, url in both.items():
        status, raw = post_whole(url, json.dumps({"create_request": {"key": small}}).encode())
        assert status == 200, (name, status, raw[:200])
        assert json.loads(raw)["result"]["created"] is True, name


def test_a_too_large_message_after_a_create_ends_the_stream_with_grpcs_error(
    both: dict[str, str],
) -> None:
    # NB: sent with a Content-Length, as curl -d sends it; etcd answered a chunked body
    # cut this way with silence instead (the stream neither ended nor errored in 20 s).
    big = json.dumps({"create_request": {"key": b64("k" * (3 << 20))}})
    body = ('{"create_request":{"key":"Zm9v"}}\n' + big).encode()
    for name, url in both.items():
        conn = connect(url, 20)
        try:
            conn.request("POST", "/v3/watch", body=body)
            resp = conn.getresponse()
            assert resp.status == 200, name
            lines = resp.read().splitlines()  # returns: the stream ends after the error
        finally:
            conn.close()
        created, error = (json.loads(line) for line in lines if line.strip())
        assert created["result"]["created"] is True, name
        assert error["error"]["grpc_code"] == 8, (name, error)
        assert error["error"]["http_code"] == 429, (name, error)
        assert error["error"]["message"].startswith("grpc: received message larger than max ("), (
            name,
            error,
        )


def test_a_later_invalid_message_stops_the_reading_and_the_watch_goes_on(
    raftmon1: Any,
) -> None:
    # etcd's gateway stops decoding the body at a bad message, the stream stays up
    url = raftmon1.endpoints[0]
    with ChunkedPost(url, "/v3/watch") as post:
        post.send(b'{"create_request":{"key":"' + b64("later/a").encode() + b'"}}')
        assert post.read_head() == 200
        [created] = post.read_messages(1)
        assert created["result"]["created"] is True
        post.send(b'{"create_request":{"key":"!!!"}}')
        post.send(b'{"create_request":{"key":"' + b64("later/b").encode() + b'"}}')
        put(url, "later/b", "1")  # never watched: the create after the bad message is unread
        rev = int(put(url, "later/a", "2")["header"]["revision"])
        [event] = post.read_messages(1)
    [ev] = event["result"]["events"]
    assert base64.b64decode(ev["kv"]["key"]) == b"later/a"
    assert int(ev["kv"]["mod_revision"]) == rev


def test_a_utf8_character_split_across_two_chunks_is_decoded(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    body = '{"create_request":{"key":"' + b64("utf8") + '"},"note":"é€😀"}'
    raw = body.encode()
    cut = raw.index("€".encode()) + 1  # inside the three bytes of €
    with ChunkedPost(url, "/v3/watch") as post:
        post.send(raw[:cut])
        post.send(raw[cut:])
        assert post.read_head() == 200
        [created] = post.read_messages(1)
    assert created["result"]["created"] is True


def test_a_watch_body_fed_one_byte_at_a_time_creates_the_watch(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    raw = ('{"create_request":{"key":"' + b64("bytewise") + '","prev_kv":true}}').encode()
    with ChunkedPost(url, "/v3/watch") as post:
        for i in range(len(raw)):
            post.send(raw[i : i + 1])
        assert post.read_head() == 200
        [created] = post.read_messages(1)
        rev = int(put(url, "bytewise", "x")["header"]["revision"])
        [event] = post.read_messages(1)
    assert created["result"]["created"] is True
    assert int(event["result"]["events"][0]["kv"]["mod_revision"]) == rev


def test_a_never_ending_watch_message_is_refused_once_it_passes_the_limit(raftmon1: Any) -> None:
    # 32 MB sent, never ended: refused once ~2.8 MB of JSON arrived (the limit's base64
    # size); the rest is read and dropped (aiohttp's lingering close), not buffered
    url = raftmon1.endpoints[0]
    with ChunkedPost(url, "/v3/watch", timeout=20) as post:
        post.send(b'{"create_request":{"key":"')
        sent = 0
        piece = b"A" * 65536
        try:
            while sent < 32 << 20:
                post.send(piece)
                sent += len(piece)
        except OSError:
            pass  # the member answered and closed while we were still sending
        assert post.read_head() == 429
        error = json.loads(post.read_piece() or b"{}")
    assert error["error"]["grpc_code"] == 8
    received = int(error["error"]["message"].split("(")[1].split()[0])
    assert GRPC_LIMIT < received < GRPC_LIMIT + (1 << 20)


def test_the_member_keeps_serving_after_every_bad_watch(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    for body, _ in INVALID_FIRST:
        post_whole(url, body)
    assert "header" in put(url, "after/bad", "ok")
