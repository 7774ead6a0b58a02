"""The /metrics endpoint: an aiohttp handler serving one registry, as etcd serves it.

The same handler serves the client listener and every `--listen-metrics-urls` listener.
Like etcd's promhttp handler it reports on itself (promhttp_metric_handler_requests_in_flight
and promhttp_metric_handler_requests_total{code}), registered once per registry however
many listeners share it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import Counter, Gauge

from exporter import catalog as C
from exporter.exposition import CONTENT_TYPE, render

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from prometheus_client import CollectorRegistry

__all__ = ["CONTENT_TYPE", "add_metrics_route", "make_aiohttp_handler", "metrics_handler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ScrapeStats:
    in_flight: Gauge
    ok: Counter
    failed: Counter


_stats: weakref.WeakKeyDictionary[CollectorRegistry, _ScrapeStats] = weakref.WeakKeyDictionary()
_stats_lock = threading.Lock()


def _stats_for(registry: CollectorRegistry) -> _ScrapeStats:
    with _stats_lock:
        stats = _stats.get(registry)
        if stats is None:
            requests = Counter(C.SCRAPES.name, C.SCRAPES.help, C.SCRAPES.labels, registry=registry)
            # Go's promhttp pre-initialises these three codes.
            stats = _ScrapeStats(
                in_flight=Gauge(
                    C.SCRAPES_IN_FLIGHT.name, C.SCRAPES_IN_FLIGHT.help, registry=registry
                ),
                ok=requests.labels("200"),
                failed=requests.labels("500"),
            )
            requests.labels("503")
            _stats[registry] = stats
        return stats


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp GET handler that renders `registry` in the text format etcd serves.

    Rendering runs on the member's event loop, so the scrape-time state reads see a
    consistent member (no locks needed in the member); it takes a few milliseconds.
    """
    stats = _stats_for(registry)

    async def handle(request: web.Request) -> web.StreamResponse:
        stats.in_flight.inc()
        try:
            body = render(registry)
        except Exception:
            log.exception("metrics render failed path=%s", request.path)
            stats.failed.inc()
            return web.Response(status=500, text="An error has occurred while serving metrics.")
        finally:
            stats.in_flight.dec()
        stats.ok.inc()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    return handle


make_aiohttp_handler = metrics_handler  # the name the style guide uses


def add_metrics_route(app: web.Application, registry: CollectorRegistry) -> None:
    """Serve `registry` at GET /metrics on `app`."""
    app.router.add_get("/metrics", metrics_handler(registry))
