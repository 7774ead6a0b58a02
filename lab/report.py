"""Readable output for the lab: the live timeline, scenario results, the scenario list.

rich draws the tables; when stdout is not a terminal it still prints plain, aligned text
(no colours, no box characters that break in CI logs).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from lab.prom import LabStack
    from lab.runtime import RunResult
    from lab.timeline import Event, Timeline

log = logging.getLogger(__name__)

KIND_STYLE = {
    "step": "dim",
    "fault": "bold magenta",
    "metric": "yellow",
    "pending": "yellow",
    "firing": "bold red",
    "routed": "bold cyan",
    "resolved": "green",
    "check": "bold",
    "note": "dim italic",
}


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


class LivePrinter:
    """Prints each timeline event as it happens: `[  12.3s] run  kind  text`."""

    def __init__(self, out: Console | None = None) -> None:
        self.out = out or console()
        self._lock = threading.Lock()

    def __call__(self, run: str, event: Event) -> None:
        style = KIND_STYLE.get(event.kind, "")
        if event.kind == "check":
            style = "bold green" if event.text.startswith("PASS") else "bold red"
        with self._lock:
            self.out.print(
                f"[{event.t:6.1f}s] {run:<24} [{style}]{event.kind:<8}[/] {event.text}",
                markup=True,
            )


def print_scenarios(scenarios: Mapping[str, Any]) -> None:
    out = console()
    table = Table(title="raftmon lab scenarios", show_lines=False)
    table.add_column("scenario")
    table.add_column("runs")
    table.add_column("what it shows")
    for s in scenarios.values():
        runs = ", ".join(r.run + (" (control)" if r.control else "") for r in s.runs)
        table.add_row(s.name, runs, s.summary)
    out.print(table)
    out.print("run one: raftmon lab <scenario> [--etcd]   every run: raftmon lab all")


def timeline_table(result: RunResult) -> Table:
    table = Table(title=f"{result.run} ({result.target}{', control' if result.control else ''})")
    table.add_column("t", justify="right")
    table.add_column("kind")
    table.add_column("what happened")
    for e in result.events:
        if e.kind == "check":
            continue
        style = KIND_STYLE.get(e.kind, "")
        table.add_row(f"{e.t:.1f}s", f"[{style}]{e.kind}[/]" if style else e.kind, e.text)
    return table


def print_results(results: list[RunResult]) -> None:
    out = console()
    for r in results:
        out.print(timeline_table(r))
    summary = Table(title="lab results")
    summary.add_column("run")
    summary.add_column("result")
    summary.add_column("checks")
    for r in results:
        lines = [
            f"{'[green]ok[/]' if c.ok else '[red]FAIL[/]'} {c.text}"
            + (f" — {c.detail}" if c.detail and not c.ok else "")
            for c in r.checks
        ]
        if r.error:
            lines.append(f"[red]error[/] {r.error}")
        summary.add_row(r.run, "[green]PASS[/]" if r.ok else "[red]FAIL[/]", "\n".join(lines))
    out.print(summary)
    for r in results:
        page = r.measurements.get(DASHBOARDS_HTML)
        if page:
            out.print(f"dashboards  {r.run:<24} {page}")


# The measurements key under which a lab run records the path of its dashboards.html.
DASHBOARDS_HTML = "dashboards_html"
# Timeline kinds drawn on the dashboards as the run's own annotations.
DASHBOARD_EVENTS = ("fault", "firing", "resolved")


def write_dashboards(
    stack: LabStack,
    cluster: str,
    timeline: Timeline,
    path: Path,
    links: dict[str, str] | None = None,
) -> Path | None:
    """dashboards.html for one run: its Prometheus, its cluster label, from start to now.

    The timeline's faults and alert changes become annotations. Never raises: a run's
    result matters more than its pictures (None, logged, when they cannot be drawn).
    """
    from dashboards import html  # the drawing code is only needed here

    prom = stack.prometheus
    if prom is None:
        return None
    events = [
        html.RunEvent(timeline.t0 + e.t, e.kind, e.text)
        for e in timeline.events()
        if e.kind in DASHBOARD_EVENTS
    ]
    try:
        return html.write(
            path,
            prom,
            cluster,
            timeline.t0,
            time.time(),
            events,
            title=f"raftmon dashboards: {cluster}",
            links=links,
        )
    except Exception:
        log.exception("dashboards.html not written cluster=%s", cluster)
        return None
