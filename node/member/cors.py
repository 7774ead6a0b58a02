"""CORS on the client listener, as etcd 3.4 answers it (embed/serve.go's accessController).

etcd's --cors (default "*") names the origins a browser may call from. With "*" (or
an empty list) every answer carries the three Access-Control-Allow-* headers with
origin `*`; with a list, only answers to a request whose Origin header is listed
carry them, naming that origin. Every OPTIONS request, whatever its path, is a
preflight answered 200 with an empty body and goes no further, as etcd answers it.
etcd's check runs before any routing, so 404s, 405s and /health answers carry the
headers too; here a response-prepare hook adds them to every answer of the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Iterable

ALLOW_METHODS = "POST, GET, OPTIONS, PUT, DELETE"
ALLOW_HEADERS = "accept, content-type, authorization"


def _headers(origin: str) -> list[tuple[str, str]]:
    return [
        ("Access-Control-Allow-Methods", ALLOW_METHODS),
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Headers", ALLOW_HEADERS),
    ]


def allowed_origin(origins: frozenset[str], origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request from `origin`, or None."""
    if not origins or "*" in origins:
        return "*"
    return origin if origin in origins else None


async def preflight(request: web.Request) -> web.Response:
    """An OPTIONS request: 200, nothing else (the headers come from the prepare hook)."""
    return web.Response(status=200)  # no body, so no Content-Type: as etcd's


def add_cors(app: web.Application, cors: Iterable[str]) -> None:
    """Answer preflights and add etcd's CORS headers to `app`'s answers.

    Register before the gateway's catch-all route, so OPTIONS reaches `preflight`.
    """
    origins = frozenset(cors)
    allow_all = allowed_origin(origins, None) == "*"
    every_origin = _headers("*")  # built once: most members allow every origin

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        # ~1 us a response (extend, as Go's Header.Add; setting three keys one by one
        # costs four times that)
        if allow_all:
            response.headers.extend(every_origin)
            return
        origin = allowed_origin(origins, request.headers.get("Origin"))
        if origin is not None:
            response.headers.extend(_headers(origin))

    app.on_response_prepare.append(add_headers)
    app.router.add_route("OPTIONS", "/{tail:.*}", preflight)
