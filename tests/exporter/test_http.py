"""/metrics over real HTTP on a loopback port: content type, body, self-instrumentation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.http import CONTENT_TYPE, add_metrics_route, metrics_handler
from exporter.metrics import MemberMetrics
from tests.exporter.fake_state import FakeState
from tests.helpers import free_port


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def member() -> AsyncIterator[tuple[MemberMetrics, str, str]]:
    """One member's registry served on two listeners (client URL and metrics URL)."""
    metrics = MemberMetrics(CollectorRegistry(), state=FakeState(), process_metrics=False)
    client_app, metrics_app = web.Application(), web.Application()
    add_metrics_route(client_app, metrics.registry)
    metrics_app.router.add_get("/metrics", metrics_handler(metrics.registry))
    runners: list[web.AppRunner] = []
    try:
        client_runner, client_url = await serve(client_app)
        runners.append(client_runner)
        metrics_runner, metrics_url = await serve(metrics_app)
        runners.append(metrics_runner)
        yield metrics, client_url, metrics_url
    finally:
        for runner in runners:
            await runner.cleanup()


async def scrape(url: str) -> tuple[int, str, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url + "/metrics") as response:
            return response.status, response.headers["Content-Type"], await response.text()


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_are_served_as_etcd_serves_them(
    member: tuple[MemberMetrics, str, str],
) -> None:
    _, client_url, _ = member
    status, content_type, body = await scrape(client_url)
    assert status == 200
    assert content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert value(body, "etcd_server_has_leader") == 1
    # The scrape being served is in flight, as promhttp reports it.
    assert value(body, "promhttp_metric_handler_requests_in_flight") == 1


async def test_both_listeners_serve_one_registry_and_count_scrapes_once_each(
    member: tuple[MemberMetrics, str, str],
) -> None:
    metrics, client_url, metrics_url = member
    metrics.on_fsync(0.002)
    await scrape(client_url)
    await scrape(metrics_url)
    _, _, body = await scrape(metrics_url)
    assert value(body, "etcd_disk_wal_fsync_duration_seconds_count") == 1
    assert value(body, "promhttp_metric_handler_requests_total", code="200") == 2
    assert value(body, "promhttp_metric_handler_requests_total", code="500") == 0


class _Exploding(Collector):
    def collect(self) -> list[Metric]:
        raise RuntimeError("collector bug")


async def test_a_render_failure_answers_500_and_is_counted() -> None:
    registry = CollectorRegistry()
    app = web.Application()
    add_metrics_route(app, registry)
    runner, url = await serve(app)
    try:
        broken = _Exploding()
        registry.register(broken)
        status, _, _ = await scrape(url)
        assert status == 500
        registry.unregister(broken)
        status, _, body = await scrape(url)
        assert status == 200
        assert value(body, "promhttp_metric_handler_requests_total", code="500") == 1
    finally:
        await runner.cleanup()
