"""Helpers shared by tests that use real tools, processes and sockets."""

from __future__ import annotations

import os
import shutil
import socket

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
