"""Grafana's rules for turning a board's queries into Prometheus requests, for one run.

What Grafana does before a panel's query leaves the browser, reimplemented so a page drawn
without Grafana asks Prometheus the same questions:
- template variables: `$datasource` is the run's Prometheus, `$cluster` the run's cluster
  label, `$instance` "All" (the board's `allValue`, `.*`);
- `$__interval` from the time range and the panel's `maxDataPoints` (its width in pixels
  when unset), rounded to one of Grafana's steps and never under the datasource's scrape
  interval; the query's step is that interval;
- `$__rate_interval` = max($__interval + scrape interval, 4 x scrape interval), Grafana's
  formula, so a rate always spans at least four scrapes;
- legends from `legendFormat` (`{{label}}`), or the series' name and labels when empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Grafana's grid: 24 columns; a row unit is 30 px tall with an 8 px gap (GRID_CELL_HEIGHT,
# GRID_CELL_VMARGIN). The page draws at this width, which sets each panel's pixel width.
GRID_COLUMNS = 24
ROW_HEIGHT_PX = 30
GAP_PX = 8
PAGE_WIDTH_PX = 1600

# Grafana's rangeutil `intervals_in_seconds` rounding table, as (upper bound, interval):
# an interval under the bound is rounded to the interval beside it.
_ROUNDING: tuple[tuple[float, float], ...] = (
    (0.015, 0.010),
    (0.035, 0.020),
    (0.075, 0.050),
    (0.15, 0.100),
    (0.35, 0.200),
    (0.75, 0.500),
    (1.5, 1.0),
    (3.5, 2.0),
    (7.5, 5.0),
    (12.5, 10.0),
    (17.5, 15.0),
    (25.0, 20.0),
    (45.0, 30.0),
    (90.0, 60.0),
    (210.0, 120.0),
    (450.0, 300.0),
    (750.0, 600.0),
    (1050.0, 900.0),
    (1500.0, 1200.0),
    (2700.0, 1800.0),
    (5400.0, 3600.0),
    (9000.0, 7200.0),
)

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LEGEND = re.compile(r"\{\{\s*(.+?)\s*\}\}")


class UnknownVariable(ValueError):
    """A board uses a template variable this renderer cannot fill for a run."""


def round_interval(seconds: float) -> float:
    """Grafana's `roundInterval`: the nearest of its friendly steps."""
    for bound, interval in _ROUNDING:
        if seconds < bound:
            return interval
    return 3600.0 * max(1, round(seconds / 3600.0))


def duration(seconds: float) -> str:
    """A Prometheus duration for `seconds` (`15s`, `500ms`)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def panel_width_px(panel: dict[str, Any]) -> int:
    width = int(panel.get("gridPos", {}).get("w", GRID_COLUMNS))
    return max(1, PAGE_WIDTH_PX * width // GRID_COLUMNS)


@dataclass(frozen=True, slots=True)
class RunRange:
    """The run's time range (Unix seconds) and its datasource's scrape interval (seconds)."""

    start: float
    end: float
    scrape_interval: float = 15.0  # Grafana's default when a datasource sets none

    def interval(self, max_points: int) -> float:
        """`$__interval` for a panel drawing at most `max_points` points."""
        raw = (self.end - self.start) / max(1, max_points)
        return max(self.scrape_interval, round_interval(raw))

    def rate_interval(self, interval: float) -> float:
        return max(interval + self.scrape_interval, 4 * self.scrape_interval)


@dataclass(frozen=True, slots=True)
class Variables:
    """The values Grafana's variable bar would hold for this run."""

    cluster: str
    instance: str = ".*"  # "All": the board's allValue
    datasource: str = "prometheus"
    shown: dict[str, str] = field(default_factory=dict)  # name -> what the bar displays

    def fill(self, expr: str, interval: float, rate_interval: float) -> str:
        values = {
            "cluster": self.cluster,
            "instance": self.instance,
            "datasource": self.datasource,
            "__interval": duration(interval),
            "__rate_interval": duration(rate_interval),
        }

        def one(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in values:
                raise UnknownVariable(f"unknown variable ${name} in {expr!r}")
            return values[name]

        return _VARIABLE.sub(one, expr)


def legend(fmt: str, labels: dict[str, str]) -> str:
    """A series' display name, as Grafana's Prometheus datasource derives it."""
    if fmt:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt)
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest else (name or "Value")
