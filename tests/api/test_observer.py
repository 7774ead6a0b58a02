"""The gateway reports through its own Protocol: the exporter fits it, and no observer works too."""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.metrics import MemberMetrics
from node.api import gateway
from node.api.observer import GatewayObserver, NullGatewayObserver
from node.errors import ErrNoLeader


def _members(protocol: type) -> list[str]:
    return [name for name in vars(protocol) if not name.startswith("_")]


def test_member_metrics_has_every_event_of_the_gateway_protocol_with_its_parameters() -> None:
    metrics = MemberMetrics(process_metrics=False)
    assert len(_members(GatewayObserver)) == 9
    for name in _members(GatewayObserver):
        declared = getattr(GatewayObserver, name)
        if isinstance(declared, property):
            assert hasattr(metrics, name), name
            continue
        wanted = list(inspect.signature(declared).parameters)[1:]  # without self
        assert list(inspect.signature(getattr(metrics, name)).parameters) == wanted, name


async def test_a_gateway_without_metrics_answers_calls_and_etcds_errors() -> None:
    async def echo(svc: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {"key": body.get("key")}

    async def no_leader(svc: Any, body: dict[str, Any]) -> dict[str, Any]:
        raise ErrNoLeader

    observer = NullGatewayObserver()
    app = web.Application()
    for path, handler in (("/echo", echo), ("/fail", no_leader)):
        rpc = observer.rpc("etcdserverpb.KV", "Put")
        duration = observer.request_duration["Put"]
        # no KVService: these handlers never touch theirs, so None stands in for it
        unary = gateway.make_unary(None, handler, rpc, duration, observer, 1024)  # type: ignore[arg-type]
        app.router.add_post(path, unary)
    async with TestClient(TestServer(app)) as client:
        ok = await client.post("/echo", data=b'{"key":"Zm9v"}')
        assert (ok.status, await ok.json()) == (200, {"key": "Zm9v"})
        failed = await client.post("/fail", data=b"{}")
        assert failed.status == 503
        assert await failed.json() == {
            "error": "etcdserver: no leader",
            "message": "etcdserver: no leader",
            "code": 14,
        }
