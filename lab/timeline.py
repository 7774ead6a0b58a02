"""What happened when: fault injected, metric moved, alert pending, firing, routed, resolved.

A `Timeline` is an append-only list of events stamped relative to the run's start. An
`Observer` thread fills it while a scenario runs: every half second it reads Prometheus'
own alert states (/api/v1/alerts), the webhook receiver's notifications and the metric
expressions the scenario asked it to watch, and records each *change* once. Scenario
checks then ask the observer questions ("did etcdMembersDown reach the ticket receiver?")
instead of sleeping and hoping.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lab.procs import WaitTimeout

if TYPE_CHECKING:
    from collections.abc import Callable

    from lab.prom import LabStack
    from lab.webhook import Notification

log = logging.getLogger(__name__)

# Event kinds, in the order a reader expects them in a healthy story.
STEP, FAULT, METRIC, PENDING, FIRING, ROUTED, RESOLVED, NOTE = (
    "step",
    "fault",
    "metric",
    "pending",
    "firing",
    "routed",
    "resolved",
    "note",
)


@dataclass(frozen=True)
class Event:
    t: float  # seconds since the run started
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 2), "kind": self.kind, "text": self.text, **self.data}


class Timeline:
    """Thread-safe list of events; `on_event` (if given) sees each one as it happens."""

    def __init__(self, name: str, on_event: Callable[[str, Event], None] | None = None) -> None:
        self.name = name
        self.t0 = time.time()
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._on_event = on_event

    def add(self, kind: str, text: str, **data: Any) -> Event:
        event = Event(time.time() - self.t0, kind, text, data)
        with self._lock:
            self._events.append(event)
        log.info("event run=%s t=%.1f kind=%s text=%r", self.name, event.t, kind, text)
        if self._on_event is not None:
            self._on_event(self.name, event)
        return event

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def first(self, kind: str, contains: str = "") -> Event | None:
        return next((e for e in self.events() if e.kind == kind and contains in e.text), None)


@dataclass
class MetricWatch:
    """Record when `expr` (an instant query) first crosses `threshold`, and when it returns."""

    label: str
    expr: str
    threshold: float
    above: bool = True
    unit: str = ""
    crossed: bool = False

    def holds(self, value: float) -> bool:
        return value > self.threshold if self.above else value < self.threshold


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    if unit == "%":
        return f"{value * 100:.0f} %"
    return f"{value:.3g}{unit}"


# Set on Ctrl-C: every wait and hold raises `Cancelled`, so runs unwind and stop what they
# started instead of finishing their scenario first.
CANCEL = threading.Event()


class Cancelled(Exception):
    """The lab was interrupted (Ctrl-C / SIGTERM)."""


AlertKey = tuple[str, str, str]  # alertname, instance, severity


class Observer:
    """Polls Prometheus and the webhook receiver for one cluster label; fills a Timeline."""

    def __init__(self, stack: LabStack, cluster: str, timeline: Timeline, interval: float = 0.5):
        self.stack = stack
        self.cluster = cluster
        self.timeline = timeline
        self.interval = interval
        self.watches: list[MetricWatch] = []
        self.seen: dict[AlertKey, set[str]] = {}  # every state an alert was seen in
        self._active: dict[AlertKey, str] = {}
        self._notified = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, watch: MetricWatch) -> None:
        with self._lock:
            self.watches.append(watch)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"observe-{self.cluster}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.poll()  # one last look, so nothing that already arrived is missed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # an observer must outlive a Prometheus hiccup
                log.exception("observer poll failed cluster=%s", self.cluster)

    # ---- one poll ---------------------------------------------------------------------
    def poll(self) -> None:
        with self._lock:
            self._poll_notifications()
            prom = self.stack.prometheus
            if prom is None:
                return
            try:
                alerts = prom.alerts()
            except (OSError, ValueError):
                return
            self._poll_alerts(alerts)
            self._poll_metrics()

    def _poll_alerts(self, alerts: list[dict[str, Any]]) -> None:
        now: dict[AlertKey, tuple[str, str]] = {}
        for alert in alerts:
            labels = alert.get("labels", {})
            if labels.get("cluster") != self.cluster:
                continue
            key = (
                labels.get("alertname", ""),
                labels.get("instance", ""),
                labels.get("severity", ""),
            )
            now[key] = (str(alert.get("state", "")), str(alert.get("value", "")))
        for key, (state, value) in now.items():
            if self._active.get(key) != state:
                self._active[key] = state
                self.seen.setdefault(key, set()).add(state)
                name, instance, severity = key
                where = f" on {instance}" if instance else ""
                kind = FIRING if state == "firing" else PENDING
                self.timeline.add(
                    kind,
                    f"{name}{where} ({severity}) {state}, value {_short(value)}",
                    alertname=name,
                    instance=instance,
                    severity=severity,
                )
        for key in list(self._active):
            if key not in now:
                state = self._active.pop(key)
                name, instance, severity = key
                self.seen.setdefault(key, set()).add("inactive")
                where = f" on {instance}" if instance else ""
                what = "resolved in Prometheus" if state == "firing" else "no longer pending"
                self.timeline.add(
                    RESOLVED if state == "firing" else NOTE,
                    f"{name}{where} ({severity}) {what}",
                    alertname=name,
                    instance=instance,
                    severity=severity,
                )

    def _poll_notifications(self) -> None:
        rows = self.stack.webhook.notifications(self.cluster)
        for row in rows[self._notified :]:
            where = f" on {row.instance}" if row.instance else ""
            kind = ROUTED if row.status == "firing" else RESOLVED
            verb = "routed to" if row.status == "firing" else "resolved, told"
            self.timeline.add(
                kind,
                f"{row.alertname}{where} ({row.severity}) {verb} receiver {row.receiver}",
                alertname=row.alertname,
                instance=row.instance,
                severity=row.severity,
                receiver=row.receiver,
                status=row.status,
            )
        self._notified = len(rows)

    def _poll_metrics(self) -> None:
        prom = self.stack.prometheus
        assert prom is not None
        for w in self.watches:
            try:
                values = prom.values(w.expr)
            except (OSError, ValueError):
                continue
            if not values:
                continue
            best = max(values.values()) if w.above else min(values.values())
            where = (
                max(values, key=lambda k: values[k])
                if w.above
                else min(values, key=lambda k: values[k])
            )
            if w.holds(best) and not w.crossed:
                w.crossed = True
                sign = ">" if w.above else "<"
                self.timeline.add(
                    METRIC,
                    f"{w.label} = {_fmt(best, w.unit)}{' on ' + where if where else ''} "
                    f"({sign} {_fmt(w.threshold, w.unit)})",
                    value=best,
                )
            elif w.crossed and not w.holds(best):
                w.crossed = False
                self.timeline.add(METRIC, f"{w.label} back to {_fmt(best, w.unit)}", value=best)

    # ---- questions ----------------------------------------------------------------------
    def notifications(self) -> list[Notification]:
        return self.stack.webhook.notifications(self.cluster)

    def _seen(self) -> dict[AlertKey, set[str]]:
        with self._lock:
            return {k: set(v) for k, v in self.seen.items()}

    def fired(self, alertname: str) -> bool:
        return any(k[0] == alertname and "firing" in s for k, s in self._seen().items())

    def pending_or_fired(self, alertname: str) -> bool:
        return any(k[0] == alertname for k in self._seen())

    def routed(self, alertname: str, receiver: str | None = None, status: str = "firing") -> bool:
        return any(
            n.alertname == alertname
            and n.status == status
            and (receiver is None or n.receiver == receiver)
            for n in self.notifications()
        )

    def receivers(self, alertname: str) -> set[str]:
        return {
            n.receiver
            for n in self.notifications()
            if n.alertname == alertname and n.status == "firing"
        }

    def firing_instances(self, alertname: str) -> set[str]:
        seen = self._seen()
        return {k[1] for k, s in seen.items() if k[0] == alertname and "firing" in s}

    def active(self, alertname: str) -> bool:
        with self._lock:
            return any(k[0] == alertname for k in self._active)

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> bool:
        """Until `check()` holds (True) or `timeout` passes (False, noted on the timeline)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if check():
                return True
            if CANCEL.wait(self.interval):
                raise Cancelled("the lab was interrupted")
        self.poll()
        if check():
            return True
        self.timeline.add(NOTE, f"gave up waiting after {timeout:g}s: {what}")
        return False

    def quiet(self, alerts: list[str], settle: float, longest_for: float) -> None:
        """A control's silence period, as long as it needs to be and no longer.

        Hold `settle` seconds (past the rules' range windows, so every condition reflects
        the state the run left), then keep observing while any of `alerts` is pending or
        firing. A pending alert either fires or clears within its `for`, so the wait is
        bounded by `longest_for` plus a margin for evaluation and polling; after it, an
        alert that never fired never will without a new event.
        """
        self.hold(settle)
        margin = 5.0
        self.wait(
            f"{', '.join(alerts)} neither pending nor firing",
            lambda: not any(self.active(a) for a in alerts),
            longest_for + margin,
        )

    def hold(self, seconds: float) -> None:
        """Keep observing for `seconds`: a measurement window or a control's silence period."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.poll()
            if CANCEL.wait(min(self.interval, max(0.0, left))):
                raise Cancelled("the lab was interrupted")


def _short(value: str) -> str:
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


__all__ = ["CANCEL", "Cancelled", "Event", "MetricWatch", "Observer", "Timeline", "WaitTimeout"]
