"""The one HTTP call the alert tests make to a real Prometheus or Alertmanager."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


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
