"""A local Alertmanager webhook receiver: every notification, with the receiver it came to.

Alertmanager's lab config sends pages to `<url>/page` and tickets to `<url>/ticket`
(alerts/render.py). The receiver runs an aiohttp server on a free loopback port in a
thread of its own, so the synchronous lab code can keep driving processes while it
records. Each alert of each notification becomes one `Notification` row, so a test can
ask "did etcdWALFsyncSlow of cluster X reach the ticket receiver, firing?".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from lab.loop_thread import LoopThread

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


class WebhookReceiver(LoopThread):
    """`start()` serves on 127.0.0.1:<free port>; `notifications()` returns what arrived."""

    thread_name = "lab-webhook"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self._rows: list[Notification] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def serve(self) -> None:
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
        self.serving()
        try:
            await self.stopping.wait()
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
