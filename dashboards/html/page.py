"""`dashboards.html`: every committed board drawn from one run's Prometheus, in one file.

The page is self-contained: uPlot (installed from npm by `make venv`, never copied into the
repo), our stylesheet and drawing script and the run's frames are all inlined, so it
opens from disk with no network. Without uPlot the page still opens and says how to get it.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboards.html.fetch import board_data, scrape_interval
from dashboards.html.grafana import RunRange

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dashboards.html.fetch import Source

log = logging.getLogger(__name__)

FILENAME = "dashboards.html"
# The order an operator reads them in; boards not listed follow, by uid.
ORDER = ("raftmon-overview", "raftmon-disk", "raftmon-network", "raftmon-loadtest")
UPLOT_ENV = "RAFTMON_UPLOT_DIR"  # a folder holding uPlot.iife.min.js and uPlot.min.css
_UPLOT_FILES = ("uPlot.iife.min.js", "uPlot.min.css")


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something the run did or saw (a fault injected, an alert firing) at Unix time `t`."""

    t: float
    kind: str  # fault | firing | resolved (others are drawn as plain markers)
    text: str


def boards() -> list[dict[str, Any]]:
    """The committed boards (dashboards/out/*.json), in ORDER."""
    out = resources.files("dashboards").joinpath("out")
    parsed = [
        json.loads(item.read_text(encoding="utf-8"))
        for item in out.iterdir()
        if item.name.endswith(".json")
    ]
    rank = {uid: i for i, uid in enumerate(ORDER)}
    return sorted(parsed, key=lambda b: (rank.get(b.get("uid", ""), len(ORDER)), b.get("uid", "")))


def uplot_dir() -> Path | None:
    """Where uPlot's dist files are: $RAFTMON_UPLOT_DIR, or node_modules above this package."""
    candidates = [Path(os.environ[UPLOT_ENV])] if os.environ.get(UPLOT_ENV) else []
    here = Path(__file__).resolve()
    candidates += [p / "node_modules" / "uplot" / "dist" for p in here.parents]
    for folder in candidates:
        if all((folder / name).is_file() for name in _UPLOT_FILES):
            return folder
    return None


@functools.cache
def _own(name: str) -> str:
    return resources.files("dashboards.html").joinpath(name).read_text(encoding="utf-8")


def collect(
    source: Source,
    cluster: str,
    start: float,
    end: float,
    events: Iterable[RunEvent] = (),
    *,
    workers: int = 4,
) -> dict[str, Any]:
    """The page's data: every board's frames for `cluster` between `start` and `end`."""
    rng = RunRange(start, end, scrape_interval(source))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashboards-html") as pool:
        drawn = [board_data(source, b, rng, cluster, pool) for b in boards()]
    return {
        "cluster": cluster,
        "range": {"from": start, "to": end, "scrapeInterval": rng.scrape_interval},
        "events": [{"t": e.t, "kind": e.kind, "text": e.text} for e in events],
        "boards": drawn,
    }


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _script_json(data: dict[str, Any]) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def render(data: dict[str, Any], title: str, links: dict[str, str] | None = None) -> str:
    """The whole page as one string (no external references)."""
    folder = uplot_dir()
    rng = data["range"]
    span = rng["to"] - rng["from"]
    nav = " ".join(
        f'<a href="#{html.escape(b["uid"])}">{html.escape(b["title"])}</a>' for b in data["boards"]
    )
    nav += "".join(
        f' <a href="{html.escape(href)}">{html.escape(text)}</a>'
        for text, href in (links or {}).items()
    )
    rows = "".join(
        f'<tr><td>{e["t"] - rng["from"]:.1f} s</td><td class="kind">{html.escape(e["kind"])}</td>'
        f"<td>{html.escape(e['text'])}</td></tr>"
        for e in data["events"]
    )
    head = (
        f"<h1>{html.escape(title)}</h1>"
        f'<div class="meta">cluster <b>{html.escape(data["cluster"])}</b> · '
        f"{_stamp(rng['from'])} to {_stamp(rng['to'])} ({span:.0f} s) · "
        f"this run's Prometheus, scrape interval {rng['scrapeInterval']:g} s · "
        f"drawn with uPlot</div><nav>{nav}</nav>"
        + (f'<table class="events">{rows}</table>' if rows else "")
    )
    if folder is None:
        body = (
            '<p class="nodata-page">uPlot is not installed, so the panels cannot be drawn: '
            "run <code>make venv</code> (it runs <code>npm ci</code>) and write this page "
            "again.</p>"
        )
        scripts = ""
        style = ""
    else:
        js, css = ((folder / n).read_text(encoding="utf-8") for n in _UPLOT_FILES)
        body = '<main id="boards"></main><pre id="render-errors" hidden></pre>'
        scripts = (
            f'<script id="page-data" type="application/json">{_script_json(data)}</script>\n'
            f"<script>{js}</script>\n<script>{_own('render.js')}</script>"
        )
        style = f"<style>{css}</style>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>{style}<style>{_own('page.css')}</style></head>\n"
        f'<body><header class="page">{head}</header>{body}\n{scripts}\n</body></html>\n'
    )


def write(
    path: Path,
    source: Source,
    cluster: str,
    start: float,
    end: float,
    events: Iterable[RunEvent] = (),
    *,
    title: str = "",
    links: dict[str, str] | None = None,
) -> Path:
    """Query, draw and write the page to `path`; returns `path`."""
    began = time.monotonic()
    data = collect(source, cluster, start, end, events)
    page = render(data, title or f"raftmon dashboards: {cluster}", links)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    log.info(
        "dashboards page written path=%s bytes=%d seconds=%.2f",
        path,
        len(page),
        time.monotonic() - began,
    )
    return path
