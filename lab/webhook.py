"""A local Alertmanager webhook receiver: every notification, with the receiver it came to.

Alertmanager's lab config sends pages to `<url>/page` and tickets to `<url>/ticket`
(alerts/render.py). The receiver runs an aiohttp server on a free loopback port in a
thread of its own, so the synchronous lab code can keep driving processes while it
records. Each alert of each notification becomes one `Notification` row, so a test can
ask "did etcdWALFsyncSlow of cluster X reach the ticket receiver, firing?".
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from lab.procs import Running

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """One alert as delivered in one webhook call."""

    at: float  # time.time() when received
    receiver: str  # Alertmanager's receiver name (page, ticket)
    path: str  # the URL path it was posted to
    status: str  # firing | resolved (this alert's status)
    alertname: str
    cluster: str
    instance: str
    severity: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class WebhookReceiver(Running):
    """`start()` serves on 127.0.0.1:<free port>; `notifications()` returns what arrived."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._rows: list[Notification] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._serve, name="lab-webhook", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("webhook receiver did not start")
        if self._error is not None:
            raise RuntimeError(f"webhook receiver failed: {self._error}") from self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except (
            BaseException
        ) as exc:  # reported to start() or logged; the thread must not die silently
            self._error = exc
            self._ready.set()
            log.exception("webhook receiver stopped with an error")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{receiver}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.Response(status=400, text="not JSON")
        now = time.time()
        path = request.path
        receiver = str(payload.get("receiver") or request.match_info["receiver"])
        rows = []
        for alert in payload.get("alerts", []):
            labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
            rows.append(
                Notification(
                    at=now,
                    receiver=receiver,
                    path=path,
                    status=str(alert.get("status", payload.get("status", ""))),
                    alertname=labels.get("alertname", ""),
                    cluster=labels.get("cluster", ""),
                    instance=labels.get("instance", ""),
                    severity=labels.get("severity", ""),
                    labels=labels,
                )
            )
        with self._lock:
            self._rows.extend(rows)
        for row in rows:
            log.info(
                "notification receiver=%s status=%s alertname=%s cluster=%s instance=%s",
                row.receiver,
                row.status,
                row.alertname,
                row.cluster,
                row.instance,
            )
        return web.Response(text="ok")

    # ---- queries ----------------------------------------------------------------------
    def notifications(self, cluster: str | None = None) -> list[Notification]:
        with self._lock:
            rows = list(self._rows)
        return [r for r in rows if cluster is None or r.cluster == cluster]
