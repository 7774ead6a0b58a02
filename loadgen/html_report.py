"""A self-contained HTML report: summary tables and inline SVG plots, no script, no network.

The SVG is drawn here (a line chart needs an axis, ticks and a polyline), so the
file opens anywhere, offline, and can be attached to an incident ticket as is.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from loadgen.recorder import PERCENTILES
from loadgen.report import Report, text_histogram

if TYPE_CHECKING:
    from collections.abc import Sequence

WIDTH, HEIGHT = 760, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 16, 36
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:820px;color:#222;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .8rem;text-align:right;
border-bottom:1px solid #eee}th{text-align:left;font-weight:600}
.note{background:#f6f8fa;border-left:4px solid #1f77b4;padding:.5rem 1rem}
.warn{border-left-color:#d62728}pre{background:#f6f8fa;padding:.8rem;overflow-x:auto}
svg text{font-size:11px;fill:#444}.legend{font-size:.9rem}
"""


def _nice_step(span: float, ticks: int = 5) -> float:
    if span <= 0:
        return 1.0
    raw = span / ticks
    mag: float = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value == 0:
            return "0"
        if value < 1e-3:
            return f"{value * 1e6:.0f}µs"
        if value < 1:
            return f"{value * 1e3:.3g}ms"
        return f"{value:.3g}s"
    return f"{value:g}"


def svg_line_chart(
    title: str,
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
    unit: str = "",
) -> str:
    """One line chart as an <svg> element; x is seconds since the start."""
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    x_max = max(xs, default=1.0) or 1.0
    y_max = max((v for _, values in series for v in values), default=0.0)
    y_step = _nice_step(y_max)
    y_top = max(y_step * math.ceil(y_max / y_step), y_step)
    x_step = _nice_step(x_max, 8)

    def px(x: float) -> float:
        return PAD_LEFT + plot_w * x / x_max

    def py(y: float) -> float:
        return PAD_TOP + plot_h * (1 - y / y_top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="#fff" stroke="#ccc"/>',
    ]
    y = 0.0
    while y <= y_top + 1e-12:
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{PAD_LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">'
            f"{html.escape(_fmt(y, unit))}</text>"
        )
        y += y_step
    x = 0.0
    while x <= x_max + 1e-9:
        parts.append(
            f'<text x="{px(x):.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle">'
            f"{x:g}</text>"
        )
        x += x_step
    parts.append(
        f'<text x="{PAD_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle">'
        "seconds since start</text>"
    )
    for i, (name, values) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{px(xv):.1f},{py(yv):.1f}" for xv, yv in zip(xs, values, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
        if len(xs) <= 60:  # few points: mark them, so a one-second run still shows
            parts += [
                f'<circle cx="{px(xv):.1f}" cy="{py(yv):.1f}" r="2.5" fill="{color}"/>'
                for xv, yv in zip(xs, values, strict=True)
            ]
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{COLORS[i % len(COLORS)]}">&#9632;</span> {html.escape(name)}'
        for i, (name, _) in enumerate(series)
    )
    return f'<h3>{html.escape(title)}</h3><div class="legend">{legend}</div>' + "".join(parts)


def _row(label: str, value: str) -> str:
    return f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"


def render_html(report: Report) -> str:
    """The whole report page."""
    cfg = report.cfg
    o = report.overall
    xs = [p.second + 1.0 for p in report.series]  # a second's figures are known at its end
    summary = "".join(
        [
            _row("Total", f"{report.elapsed:.4f} s"),
            _row("Slowest", f"{o.moments.slowest if o.moments.count else 0:.4f} s"),
            _row("Fastest", f"{o.moments.fastest if o.moments.count else 0:.4f} s"),
            _row("Average", f"{o.moments.average:.4f} s"),
            _row("Stddev", f"{o.moments.stddev:.4f} s"),
            _row("Requests/sec", f"{report.requests_per_second:.2f}"),
            _row("Succeeded", str(o.ok)),
            _row("Failed", str(report.error_total)),
            _row("Sent", str(report.sent)),
            _row("Scheduled, never sent", str(report.unsent)),
            _row("Client CPU per request", f"{report.cpu_us_per_request:.0f} µs"),
        ]
    )
    pct = "".join(_row(f"p{p:g}", f"{o.percentile(p) * 1e3:.3f} ms") for p in PERCENTILES)
    errors = "".join(_row(k, str(v)) for k, v in o.errors.items()) or _row("none", "0")
    config = "".join(
        [
            _row("workload", cfg.workload),
            _row("protocol", cfg.protocol),
            _row("endpoints", ", ".join(cfg.endpoints)),
            _row("conns / clients / workers", f"{cfg.conns} / {cfg.clients} / {report.workers}"),
            _row("total / duration", f"{cfg.total} / {cfg.duration}"),
            _row("rate", f"{cfg.rate:g}/s" if cfg.rate else "closed loop"),
            _row(
                "key size / value size / key space",
                f"{cfg.key_size} / {cfg.val_size} / {cfg.key_space_size}",
            ),
            _row("consistency", cfg.consistency),
        ]
    )
    ops = ""
    if len(report.ops) > 1:
        ops = (
            "<h2>By operation</h2><table><tr><th>op</th><th>ok</th><th>errors</th>"
            "<th>p50</th><th>p99</th></tr>"
            + "".join(
                f"<tr><th>{html.escape(n)}</th><td>{s.ok}</td><td>{sum(s.errors.values())}</td>"
                f"<td>{s.percentile(50) * 1e3:.3f} ms</td>"
                f"<td>{s.percentile(99) * 1e3:.3f} ms</td></tr>"
                for n, s in report.ops.items()
            )
            + "</table>"
        )
    watch = ""
    if report.watch is not None:
        w = report.watch
        watch = (
            "<h2>Watch events (put acknowledgement to event)</h2><table>"
            + _row("received", str(w.moments.count))
            + _row("before their put's ack (counted as 0)", str(report.watch_early))
            + _row("missing", str(report.watch_missing))
            + "".join(_row(f"p{p:g}", f"{w.percentile(p) * 1e3:.3f} ms") for p in PERCENTILES)
            + "</table>"
        )
        if report.watch_from_send is not None:
            ws = report.watch_from_send
            watch += (
                "<h3>From the put's send (etcd benchmark watch-latency)</h3><table>"
                + "".join(_row(f"p{p:g}", f"{ws.percentile(p) * 1e3:.3f} ms") for p in PERCENTILES)
                + "</table>"
            )
    charts = (
        svg_line_chart(
            "Throughput (requests per second: sent, and completed successfully)",
            xs,
            [
                ("sent/s", [float(p.sent) for p in report.series]),
                ("succeeded/s", [float(p.throughput) for p in report.series]),
            ],
        )
        + svg_line_chart(
            "Latency per second",
            xs,
            [("p50", [p.p50 for p in report.series]), ("p99", [p.p99 for p in report.series])],
            unit="s",
        )
        + svg_line_chart(
            "Errors per second", xs, [("errors", [float(p.errors) for p in report.series])]
        )
    )
    notes = "".join(f'<p class="note warn">{html.escape(n)}</p>' for n in report.notes)
    histogram = html.escape("\n".join(text_histogram(o)))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>raftmon load report: {html.escape(cfg.workload)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>raftmon load: {html.escape(cfg.workload)}</h1>"
        f'<p class="note">{html.escape(report.method_note)}</p>{notes}'
        f"<h2>Summary</h2><table>{summary}</table>"
        f"<h2>Latency distribution</h2><table>{pct}</table>"
        f"<h2>Errors by kind</h2><table>{errors}</table>{ops}{watch}"
        f"<h2>Over time</h2>{charts}"
        f"<h2>Response time histogram</h2><pre>{histogram}</pre>"
        f"<h2>Configuration</h2><table>{config}</table>"
        "</body></html>\n"
    )
