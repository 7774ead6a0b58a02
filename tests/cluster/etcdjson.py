"""A tiny synchronous etcd v3 JSON client for cluster tests (stdlib only)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from lab.procs import http_json


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def post_status(
    url: str, body: bytes | dict[str, Any], timeout: float = 15.0
) -> tuple[int, dict[str, Any]]:
    """POST raw bytes (or a JSON object) and return (HTTP status, decoded JSON body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def http_text(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    """Any request; (HTTP status, body as text), error statuses included."""
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def call(url: str, path: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    out = http_json(url + path, body, timeout=timeout)
    assert isinstance(out, dict), out
    return out


def put(url: str, key: str, value: str, timeout: float = 10.0, **extra: Any) -> dict[str, Any]:
    return call(url, "/v3/kv/put", {"key": b64(key), "value": b64(value), **extra}, timeout)


def get(url: str, key: str, **extra: Any) -> dict[str, Any]:
    return call(url, "/v3/kv/range", {"key": b64(key), **extra})


def value_of(url: str, key: str, **extra: Any) -> str | None:
    resp = get(url, key, **extra)
    kvs = resp.get("kvs") or []
    return unb64(kvs[0].get("value", "")) if kvs else None


def revision(url: str) -> int:
    return int(call(url, "/v3/maintenance/status", {})["header"]["revision"])


def wait_until(check: Any, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `check()` until it returns a truthy value; bounded in time and count."""
    deadline = time.monotonic() + timeout
    last: Any = None
    for _ in range(int(timeout / interval) + 1):
        try:
            last = check()
        except OSError as err:
            last = err
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")


def watch_lines(url: str, body: dict[str, Any], timeout: float = 10.0) -> Iterator[dict[str, Any]]:
    """POST /v3/watch and yield each streamed JSON object until the caller stops."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", "/v3/watch", body=json.dumps(body))
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        while True:
            line = resp.readline()
            if not line:
                return
            if line.strip():
                yield json.loads(line)
    finally:
        conn.close()
