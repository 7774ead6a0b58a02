"""What the member's handlers share: the typed app key of the server, and JSON answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from node.server import EtcdServer

SERVER = web.AppKey("server", EtcdServer)


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    """A compact JSON body, as etcd's gateway writes it."""
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )
