"""Abuse (issue #18, "Abuse"): other clients keep being served and the member recovers.

Slowloris connections, 2,000 idle connections and a watcher that never reads, all at
once, while an ordinary client writes and reads; then a member limited to 256 open
files (`ulimit -n 256`) flooded with more connections than that, which recovers once
they close (etcd 3.4 exits there). Asserted: answers arrive and hold the right
values, the member stays up; never how fast.
"""

from __future__ import annotations

import base64
import contextlib
import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from tests.abuse.conftest import ClusterFactory
from tests.cluster.etcdjson import b64, get, post_status, put

pytestmark = pytest.mark.cluster

FAST = ["--heartbeat-interval=50", "--election-timeout=500"]


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for s in opened:
            with contextlib.suppress(OSError):
                s.close()


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(address(url), timeout=timeout)


def deaf_watcher(url: str, prefix: str) -> socket.socket:
    """A watch whose client never reads: its receive buffer is tiny and stays full."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(address(url))
    body = json.dumps(
        {
            "create_request": {
                "key": b64(prefix),
                "range_end": b64(prefix[:-1] + chr(ord(prefix[-1]) + 1)),
            }
        }
    ).encode()
    s.sendall(
        b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    return s


def served(url: str, rounds: int, tag: str) -> None:
    """An ordinary client: each write is answered and read back."""
    for i in range(rounds):
        put(url, f"{tag}/{i}", f"v{i}", timeout=30)
        out = get(url, f"{tag}/{i}")
        assert base64.b64decode(out["kvs"][0]["value"]) == f"v{i}".encode()


def test_slowloris_idle_connections_and_a_deaf_watcher_leave_others_served(
    cluster_of: ClusterFactory,
) -> None:
    # 2,000 sockets here and 2,000 in the member (which inherits this limit)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    cluster = cluster_of(1, FAST)
    url = cluster.endpoints[0]
    with sockets() as opened:
        for _ in range(2000):  # idle: connected, never a byte
            opened.append(connect(url))
        slow = [connect(url) for _ in range(20)]  # slowloris: headers a byte at a time
        opened.extend(slow)
        opened.append(deaf_watcher(url, "deaf/"))
        head = b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nX-Slow: "
        big = "x" * 100_000
        for i in range(60):
            for s in slow:
                with contextlib.suppress(OSError):
                    s.send(head[i : i + 1] if i < len(head) else b"a")
            put(url, f"deaf/{i % 5}", big, timeout=30)  # for the watcher that never reads
            if i % 10 == 0:
                served(url, 3, f"others{i}")
        served(url, 10, "during")
        assert cluster.members[0].alive
    served(url, 10, "after")  # and once they are all gone


def test_a_member_out_of_file_descriptors_recovers_when_connections_close(
    cluster_of: ClusterFactory,
) -> None:
    cluster: LocalCluster = cluster_of(1, FAST)
    member = cluster.members[0]
    url = member.client_url
    assert member.proc is not None
    # `ulimit -n 256` on the running member (what preexec_fn would set at its start)
    resource.prlimit(member.proc.pid, resource.RLIMIT_NOFILE, (256, 256))
    served(url, 5, "before")
    with sockets() as opened:
        for _ in range(400):  # more than the member can accept
            with contextlib.suppress(OSError):
                opened.append(connect(url, timeout=2))
        fds = Path(f"/proc/{member.proc.pid}/fd")
        for _ in range(100):  # it accepts until accept() fails with EMFILE
            if len(list(fds.iterdir())) >= 250:
                break
            time.sleep(0.05)
        assert len(list(fds.iterdir())) >= 250, "the member never reached its limit"
        assert member.alive
    # every connection closed: the member accepts again and serves (bounded retries,
    # asyncio waits a second before it accepts again after EMFILE)
    deadline = time.monotonic() + 30
    while True:
        try:
            served(url, 5, "after")
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert member.alive
    status, body = post_status(url + "/v3/maintenance/status", {})
    assert status == 200, body
