"""A real Prometheus or Alertmanager for the alert tests: started, reached, stopped."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import require_tool, running_until_ready


@contextmanager
def serving(
    tool: str, port: int, flags: list[str], tmp_path: Path, timeout: float
) -> Iterator[str]:
    """Debian's `tool` (prometheus, prometheus-alertmanager) on 127.0.0.1:`port` with
    `flags`; yields its base URL once /-/ready answers, and always stops it."""
    base = f"http://127.0.0.1:{port}"
    argv = [
        require_tool(tool),
        *flags,
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with running_until_ready(argv, tmp_path / f"{tool}.log", f"{base}/-/ready", tool, timeout):
        yield base


def request(url: str, body: Any = None) -> tuple[int, bytes]:
    """Status and body of a GET (or of a JSON POST when `body` is given); 0 if unreachable,
    so a caller polling a starting server just tries again."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=2) as response:
            return response.status, response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""
