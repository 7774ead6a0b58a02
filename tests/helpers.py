"""Helpers shared by tests that use real tools, processes and sockets."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    """Path of a real tool (promtool, amtool, prometheus, etcd, ...); fail under CI if missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install it with `make tools` (Debian packages)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get_status(url: str, timeout: float = 2.0) -> int:
    """HTTP status of a GET, 0 when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@contextlib.contextmanager
def running_until_ready(
    argv: list[str], log_path: Path, ready_url: str, what: str, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a real server (Prometheus, Alertmanager, ...), wait for `ready_url` to answer
    200 (bounded), yield it, and always stop it: SIGTERM, then SIGKILL after 15 s.
    A start that fails or times out fails the test with the tail of the server's log."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while http_get_status(ready_url) != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    pytest.fail(f"{what} not ready:\n{tail}")
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
