"""A small JSON client for /v3/lock and /v3/election, and the masking that lets two
implementations' answers be compared (stdlib only, every call bounded in time)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from tests.cluster.etcdjson import b64, post_status

TIMEOUT = 30.0  # longest a blocking call (Lock, Campaign) may take in these tests


def post(url: str, path: str, body: dict[str, Any], timeout: float = TIMEOUT) -> tuple[int, Any]:
    return post_status(url + path, body, timeout=timeout)


def ok(url: str, path: str, body: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
    status, out = post(url, path, body, timeout)
    assert status == 200, (path, body, status, out)
    assert isinstance(out, dict)
    return out


def keys_under(url: str, prefix: str) -> list[str]:
    """The keys under `prefix`, oldest first (their creation order is the waiting order)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    out = ok(
        url,
        "/v3/kv/range",
        {"key": b64(prefix), "range_end": b64(end), "sort_target": "CREATE", "keys_only": True},
    )
    return [base64.b64decode(kv["key"]).decode() for kv in out.get("kvs", [])]


def grant(url: str, ttl: int, lease_id: int = 0) -> int:
    return int(ok(url, "/v3/lease/grant", {"TTL": ttl, "ID": lease_id})["ID"])


class Stream:
    """A streamed POST (Observe) read line by line in a thread, until `close()`."""

    def __init__(self, url: str, path: str, body: dict[str, Any]) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        self._conn.request("POST", path, body=json.dumps(body))
        self._sock = self._conn.sock  # the response may take the connection over
        self.status = 0
        self.lines: list[Any] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # The answer's head may come with the first message only (etcd's gateway
        # writes nothing before it), so it is read here too, not by the caller.
        try:
            response = self._conn.getresponse()
            self.status = response.status
            while line := response.readline():
                if line.strip():
                    with self._cond:
                        self.lines.append(json.loads(line))
                        self._cond.notify_all()
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed by the test

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Any]:
        """The first `count` lines, once they arrived (bounded by `timeout`)."""
        with self._cond:
            arrived = self._cond.wait_for(lambda: len(self.lines) >= count, timeout)
            assert arrived, f"{len(self.lines)} of {count} lines arrived: {self.lines}"
            return list(self.lines[:count])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
        self._thread.join(timeout=10)
        self._conn.close()


# ---- comparing two implementations ------------------------------------------------------
_MEMBER_FIELDS = ("cluster_id", "member_id", "raft_term")
_WAITER_KEY = re.compile(r"(.*/)([0-9a-f]+)")


class Masker:
    """Replaces what differs between two clusters by design: member ids and terms, and
    lease ids (named L1, L2, ... in order of first appearance, in keys too)."""

    def __init__(self) -> None:
        self.leases: dict[int, str] = {}

    def lease(self, lease_id: int) -> str:
        return self.leases.setdefault(lease_id, f"L{len(self.leases) + 1}")

    def key(self, b64key: str) -> str:
        text = base64.b64decode(b64key).decode("utf-8", "replace")
        m = _WAITER_KEY.fullmatch(text)
        if m is None:
            return text
        return m.group(1) + self.lease(int(m.group(2), 16))

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        out: dict[str, Any] = {}
        for name, value in obj.items():
            if name in _MEMBER_FIELDS:
                out[name] = "*"
            elif name in ("lease", "ID") and isinstance(value, str):
                out[name] = self.lease(int(value))
            elif name == "key" and isinstance(value, str):
                out[name] = self.key(value)
            else:
                out[name] = self(value)
        return out
