"""The merged report: etcd benchmark-style text, JSON for machines, and the per-second CSV.

`merge_results` adds the workers' HDR histograms (decode + add), moments, outcome
counts and per-second rows into one `Report`; every renderer reads only the Report.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadgen.errors import ERROR_KINDS, SUCCESS
from loadgen.recorder import (
    PERCENTILES,
    SERIES_DIGITS,
    Moments,
    OpResult,
    WorkerResult,
    decode,
    new_histogram,
)

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

    from loadgen.config import LoadConfig

OPEN_LOOP_NOTE = (
    "Open loop at {rate:g} requests/s: latency is measured from each request's intended "
    "send time, so time spent waiting behind a stalled cluster counts as latency "
    "(no coordinated omission)."
)
CLOSED_LOOP_NOTE = (
    "Closed loop: each client sends its next request when the previous one is answered; "
    "latency is measured from the actual send (a stall lowers throughput rather than "
    "raising latency; use --rate for open-loop latency)."
)
HISTOGRAM_BUCKETS = 10
BAR_WIDTH = 40


@dataclass(slots=True)
class OpSummary:
    """Merged figures of one operation (or of all of them)."""

    moments: Moments
    histogram: HdrHistogram
    outcomes: dict[str, int]

    @property
    def ok(self) -> int:
        return self.outcomes.get(SUCCESS, 0)

    @property
    def errors(self) -> dict[str, int]:
        return {k: self.outcomes.get(k, 0) for k in ERROR_KINDS if self.outcomes.get(k, 0)}

    def percentile(self, p: float) -> float:
        if not self.histogram.get_total_count():
            return 0.0
        return float(self.histogram.get_value_at_percentile(p)) / 1e6

    def percentiles(self) -> dict[str, float]:
        return {f"{p:g}": self.percentile(p) for p in PERCENTILES}


@dataclass(slots=True)
class SeriesPoint:
    second: int
    sent: int  # requests sent in this second: an open-loop run keeps it near --rate
    throughput: int  # successful requests completed in this second
    errors: int
    p50: float  # seconds
    p99: float


@dataclass(slots=True)
class Report:
    cfg: LoadConfig
    workers: int
    elapsed: float
    overall: OpSummary
    ops: dict[str, OpSummary]
    series: list[SeriesPoint]
    sent: int
    unsent: int
    watch: OpSummary | None = None
    watch_from_send: OpSummary | None = None
    watch_early: int = 0
    watch_missing: int = 0
    notes: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the generator's own CPU while it sent, every worker summed

    @property
    def cpu_us_per_request(self) -> float:
        """The generator's CPU per request sent (µs): its cost to the machine it measures on."""
        return 1e6 * self.cpu_seconds / self.sent if self.sent else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.overall.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def error_total(self) -> int:
        return sum(self.overall.errors.values())

    @property
    def method_note(self) -> str:
        if self.cfg.open_loop:
            return OPEN_LOOP_NOTE.format(rate=self.cfg.rate)
        return CLOSED_LOOP_NOTE


def _merge_op(items: list[OpResult]) -> OpSummary:
    moments = Moments()
    histogram = new_histogram()
    outcomes: dict[str, int] = {}
    for item in items:
        moments.merge(item.moments)
        if item.histogram:
            histogram.add(decode(item.histogram))
        for k, v in item.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + v
    return OpSummary(moments, histogram, outcomes)


def merge_results(cfg: LoadConfig, results: list[WorkerResult]) -> Report:
    """One report from every worker's result."""
    op_names: list[str] = []
    for r in results:
        op_names += [op for op in r.ops if op not in op_names]
    ops = {op: _merge_op([r.ops[op] for r in results if op in r.ops]) for op in op_names}
    overall = _merge_op([item for r in results for item in r.ops.values()])

    rows: dict[int, tuple[int, int, int, HdrHistogram | None]] = {}
    for r in results:
        for row in r.series:
            sent, ok, err, hist = rows.get(row.second, (0, 0, 0, None))
            if row.histogram:
                decoded = decode(row.histogram)
                if hist is None:
                    hist = new_histogram(SERIES_DIGITS)
                hist.add(decoded)
            rows[row.second] = (sent + row.sent, ok + row.ok, err + row.errors, hist)
    series = []
    for second in range(max(rows) + 1 if rows else 0):
        sent, ok, err, hist = rows.get(second, (0, 0, 0, None))
        p50 = hist.get_value_at_percentile(50.0) / 1e6 if hist is not None else 0.0
        p99 = hist.get_value_at_percentile(99.0) / 1e6 if hist is not None else 0.0
        series.append(SeriesPoint(second, sent, ok, err, p50, p99))

    watch_items = [r.watch_events for r in results if r.watch_events is not None]
    send_items = [r.watch_events_from_send for r in results if r.watch_events_from_send]
    notes = [n for r in results for n in r.notes]
    unsent = sum(r.unsent for r in results)
    if unsent:
        notes.append(
            f"{unsent} scheduled requests were never sent: the generator could not keep "
            "the schedule before the hard stop (add --clients or --workers)."
        )
    return Report(
        cfg=cfg,
        workers=len(results),
        elapsed=max((r.elapsed for r in results), default=0.0),
        overall=overall,
        ops=ops,
        series=series,
        sent=sum(r.sent for r in results),
        unsent=unsent,
        watch=_merge_op(watch_items) if watch_items else None,
        watch_from_send=_merge_op(send_items) if send_items else None,
        watch_early=sum(r.watch_early_events for r in results),
        watch_missing=sum(r.watch_missing_events for r in results),
        notes=notes,
        cpu_seconds=sum(r.cpu_seconds for r in results),
    )


# -- text ------------------------------------------------------------------------------
def _latency_block(title: str, s: OpSummary) -> list[str]:
    m = s.moments
    lines = [
        f"{title}:",
        f"  Total:\t{m.count} requests.",
        f"  Slowest:\t{m.slowest if m.count else 0.0:.4f} secs.",
        f"  Fastest:\t{m.fastest if m.count else 0.0:.4f} secs.",
        f"  Average:\t{m.average:.4f} secs.",
        f"  Stddev:\t{m.stddev:.4f} secs.",
    ]
    return lines


def text_histogram(s: OpSummary, buckets: int = HISTOGRAM_BUCKETS) -> list[str]:
    """etcd benchmark's response time histogram: linear buckets fastest..slowest, bars of ∎."""
    m = s.moments
    if not m.count:
        return ["  (no successful requests)"]
    lo, hi = m.fastest, m.slowest
    width = (hi - lo) / buckets if hi > lo else 0.0
    edges = [lo + width * (i + 1) for i in range(buckets)] if width else [hi]
    counts = [0] * len(edges)
    for item in s.histogram.get_recorded_iterator():
        value = item.value_iterated_to / 1e6
        n = item.count_added_in_this_iter_step
        index = 0 if not width else min(int((value - lo) / width), len(edges) - 1)
        counts[max(index, 0)] += n
    top = max(counts) or 1
    lines = [f"  {lo:.4f} [0]\t|"] if width else []
    for edge, count in zip(edges, counts, strict=True):
        bar = "∎" * int(BAR_WIDTH * count / top)
        lines.append(f"  {edge:.4f} [{count}]\t|{bar}")
    return lines


def render_text(report: Report) -> str:
    """The human summary, laid out like etcd's `benchmark` output."""
    o = report.overall
    lines = [
        "Summary:",
        f"  Total:\t{report.elapsed:.4f} secs.",
        f"  Slowest:\t{o.moments.slowest if o.moments.count else 0.0:.4f} secs.",
        f"  Fastest:\t{o.moments.fastest if o.moments.count else 0.0:.4f} secs.",
        f"  Average:\t{o.moments.average:.4f} secs.",
        f"  Stddev:\t{o.moments.stddev:.4f} secs.",
        f"  Requests/sec:\t{report.requests_per_second:.4f}",
        "",
        "Response time histogram:",
        *text_histogram(o),
        "",
        "Latency distribution:",
        *[f"  {p:g}% in {o.percentile(p):.4f} secs." for p in PERCENTILES],
        "",
        f"Requests: {o.ok} succeeded, {report.error_total} failed, {report.sent} sent"
        + (f", {report.unsent} scheduled but never sent" if report.unsent else ""),
    ]
    lines.append(
        f"Client CPU ({report.cfg.protocol}): {report.cpu_seconds:.3f} secs, "
        f"{report.cpu_us_per_request:.0f} µs per request."
    )
    if report.overall.errors:
        lines.append("Errors by kind:")
        lines += [f"  {k}:\t{v}" for k, v in report.overall.errors.items()]
    if len(report.ops) > 1:
        for name, s in report.ops.items():
            lines += ["", *_latency_block(f"Operation {name}", s)]
            lines += [f"  p50 {s.percentile(50):.4f}  p99 {s.percentile(99):.4f} secs."]
    if report.watch is not None:
        w = report.watch
        lines += ["", *_latency_block("Watch events (put ack -> event)", w)]
        lines += [f"  {p:g}% in {w.percentile(p):.4f} secs." for p in PERCENTILES]
        lines.append(
            f"  events: {w.moments.count} received, {report.watch_early} before their put's ack "
            f"(counted as 0), {report.watch_missing} missing"
        )
    if report.watch_from_send is not None:
        ws = report.watch_from_send
        lines += ["", "Watch events (put send -> event, as etcd benchmark watch-latency):"]
        lines += [f"  {p:g}% in {ws.percentile(p):.4f} secs." for p in (50.0, 90.0, 99.0, 99.9)]
    lines += ["", f"Method: {report.method_note}"]
    lines += [f"Note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


# -- JSON -------------------------------------------------------------------------------
def _latency_json(s: OpSummary) -> dict[str, Any]:
    m = s.moments
    return {
        "count": m.count,
        "slowest": m.slowest if m.count else 0.0,
        "fastest": m.fastest if m.count else 0.0,
        "average": m.average,
        "stddev": m.stddev,
        "percentiles": s.percentiles(),
    }


def report_json(report: Report) -> dict[str, Any]:
    """Everything in the report as plain JSON (seconds for every duration)."""
    cfg = report.cfg
    o = report.overall
    out: dict[str, Any] = {
        "workload": cfg.workload,
        "protocol": cfg.protocol,
        "mode": "open" if cfg.open_loop else "closed",
        "latency_measured_from": "intended_send_time" if cfg.open_loop else "actual_send_time",
        "method": report.method_note,
        "config": {
            "endpoints": list(cfg.endpoints),
            "protocol": cfg.protocol,
            "conns": cfg.conns,
            "clients": cfg.clients,
            "total": cfg.total,
            "duration": cfg.duration,
            "rate": cfg.rate,
            "consistency": cfg.consistency,
            "key_size": cfg.key_size,
            "val_size": cfg.val_size,
            "key_space_size": cfg.key_space_size,
            "sequential_keys": cfg.sequential_keys,
            "workers": report.workers,
        },
        "total_seconds": report.elapsed,
        "requests_per_second": report.requests_per_second,
        "sent": report.sent,
        "unsent": report.unsent,
        "succeeded": o.ok,
        "failed": report.error_total,
        "client_cpu_seconds": report.cpu_seconds,
        "client_cpu_us_per_request": report.cpu_us_per_request,
        "errors": {k: o.errors.get(k, 0) for k in ERROR_KINDS},
        "latency_seconds": _latency_json(o),
        "ops": {
            name: {
                "succeeded": s.ok,
                "errors": s.errors,
                "latency_seconds": _latency_json(s),
            }
            for name, s in report.ops.items()
        },
        "timeseries": [
            {
                "second": p.second,
                "sent": p.sent,
                "throughput": p.throughput,
                "errors": p.errors,
                "p50_seconds": p.p50,
                "p99_seconds": p.p99,
            }
            for p in report.series
        ],
        "notes": report.notes,
    }
    if report.watch is not None:
        out["watch_events"] = {
            "received": report.watch.moments.count,
            "early": report.watch_early,
            "missing": report.watch_missing,
            "latency_seconds": _latency_json(report.watch),
        }
        if report.watch_from_send is not None:
            out["watch_events"]["latency_from_send_seconds"] = _latency_json(report.watch_from_send)
    cleaned: dict[str, Any] = _finite(out)
    return cleaned


def _finite(obj: Any) -> Any:
    """JSON has no inf/nan: replace them with null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def render_json(report: Report) -> str:
    return json.dumps(report_json(report), indent=2) + "\n"


# -- CSV --------------------------------------------------------------------------------
CSV_COLUMNS = ("second", "sent", "throughput", "errors", "p50_seconds", "p99_seconds")


def render_csv(report: Report) -> str:
    """The per-second series: sent, throughput (successes/s), errors, p50 and p99 in seconds."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in report.series:
        writer.writerow([p.second, p.sent, p.throughput, p.errors, f"{p.p50:.6f}", f"{p.p99:.6f}"])
    return buf.getvalue()
