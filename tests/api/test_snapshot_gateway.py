"""POST /v3/maintenance/snapshot: grpc-gateway's server-stream framing, as etcd 3.4 writes it.

Each SnapshotResponse is a line `{"result":{...}}`: uint64 as a string, bytes as
base64, zero values left out; the database comes in 32 KiB blobs and the last line
is the sha256 of all of them. The bytes differ (bbolt against SQLite); the framing
and the checksum rule must not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from itertools import groupby

import pytest

from lab.cluster import LocalCluster

BLOB = 32 * 1024


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url + "/v3/maintenance/snapshot", body, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


@pytest.fixture(scope="module")
def filled(both: dict[str, str]) -> dict[str, str]:
    """Both members hold ~150 KB of values, so the database spans several blobs."""
    for url in both.values():
        for i in range(15):
            body = {
                "key": base64.b64encode(b"snap/%02d" % i).decode(),
                "value": base64.b64encode(b"x" * 10_000).decode(),
            }
            with urllib.request.urlopen(
                url + "/v3/kv/put", json.dumps(body).encode(), timeout=10
            ) as r:
                assert r.status == 200
    return both


def _messages(raw: bytes) -> list[dict[str, str]]:
    assert raw.endswith(b"\n")
    lines = raw[:-1].split(b"\n")
    out = []
    for line in lines:
        obj = json.loads(line)
        assert list(obj) == ["result"], line[:80]
        out.append(obj["result"])
    return out


def _framing(messages: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """The field names of each line, runs of equal lines collapsed: the stream's shape."""
    return [key for key, _ in groupby(tuple(m) for m in messages)]


def _check_stream(messages: list[dict[str, str]]) -> None:
    *data, trailer = messages
    blobs = [base64.b64decode(m["blob"]) for m in data]
    image = b"".join(blobs)
    assert list(trailer) == ["blob"]
    assert base64.b64decode(trailer["blob"]) == hashlib.sha256(image).digest()
    assert all(len(b) == BLOB for b in blobs[:-1])
    left = len(image)
    for m, blob in zip(data, blobs, strict=True):
        left -= len(blob)
        assert int(m.get("remaining_bytes", "0")) == left
        if left:
            assert isinstance(m["remaining_bytes"], str)


def test_snapshot_stream_is_framed_as_etcds(filled: dict[str, str]) -> None:
    seen = {}
    for name, url in filled.items():
        status, ctype, raw = _post(url, b"{}")
        assert (status, ctype) == (200, "application/json"), (name, raw[:200])
        messages = _messages(raw)
        _check_stream(messages)
        seen[name] = _framing(messages)
    assert seen["raftmon"] == seen["etcd"] == [("remaining_bytes", "blob"), ("blob",)]


@pytest.mark.parametrize("body", [b"", b"null", b'{"unknown": 1}'])
def test_snapshot_request_bodies_taken_as_etcd_takes_them(
    filled: dict[str, str], body: bytes
) -> None:
    for name, url in filled.items():
        status, _, raw = _post(url, body)
        assert status == 200, (name, raw[:200])
        _check_stream(_messages(raw))


@pytest.mark.parametrize("body", [b"xx", b"{", b"[1]"])
def test_snapshot_bad_json_is_refused_as_etcd_refuses_it(both: dict[str, str], body: bytes) -> None:
    answers = {name: _post(url, body) for name, url in both.items()}
    assert answers["raftmon"] == answers["etcd"]


def _counter(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(part in line for part in labels.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_snapshot_call_counts_as_etcds_server_stream(
    filled: dict[str, str], raftmon1: LocalCluster
) -> None:
    metrics = raftmon1.members[0].metrics_url + "/metrics"
    method = 'grpc_method="Snapshot"'

    def scrape() -> tuple[float, float, float]:
        with urllib.request.urlopen(metrics, timeout=10) as r:
            text = r.read().decode()
        return (
            _counter(text, "grpc_server_started_total", f'{method},grpc_type="server_stream"'),
            _counter(text, "grpc_server_handled_total", f'{method},grpc_code="OK"'),
            _counter(text, "grpc_server_msg_sent_total", method),
        )

    before = scrape()
    status, _, raw = _post(filled["raftmon"], b"{}")
    assert status == 200
    started, handled, sent = (a - b for a, b in zip(scrape(), before, strict=True))
    assert (started, handled, sent) == (1, 1, len(raw.splitlines()))
