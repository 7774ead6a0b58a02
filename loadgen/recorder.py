"""Latency recording: HDR histograms per operation, exact moments, and a per-second series.

Percentiles come from HDR histograms (microseconds, 1 us .. 1 h, 3 significant
digits), so a long run costs constant memory and workers' results merge exactly by
adding counts (`encode()` on one side, `decode()` + `add()` on the other). The
summary's fastest/slowest/average/stddev come from exact running sums, as etcd's
benchmark reports them. Only successful requests enter the latency figures; failures
are counted by kind.

The per-second series closes a second as soon as a send, a completion (or the ticker)
falls in a later one; each closed second keeps its own small histogram, encoded, so
the p50/p99 of a second stay exact after merging workers. A row counts the requests
*sent* in its second apart from those *completed* in it: an open-loop schedule bounds
the first, while the second may burst legitimately when a stalled cluster catches up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from loadgen.errors import SUCCESS

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: an open-loop run against a stalled cluster can lag
SIGNIFICANT_DIGITS = 3
SERIES_DIGITS = 2  # per-second histograms: 1% is plenty for a plot, and 10x smaller
#: Completions queued before they are recorded together (see `Recorder.record`).
BATCH = 64
PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99)


def new_histogram(digits: int = SIGNIFICANT_DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def to_us(seconds: float) -> int:
    return min(max(int(seconds * 1_000_000), 0), HIGHEST_US)


def decode(encoded: str) -> HdrHistogram:
    histogram: HdrHistogram = HdrHistogram.decode(encoded)
    return histogram


def merge_encoded(encoded: list[str], digits: int = SIGNIFICANT_DIGITS) -> HdrHistogram:
    merged = new_histogram(digits)
    for item in encoded:
        if item:
            merged.add(decode(item))
    return merged


@dataclass(slots=True)
class Moments:
    """Exact count/sum/sum of squares/min/max of latencies in seconds; merges by addition."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    fastest: float = math.inf
    slowest: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.squares += seconds * seconds
        if seconds < self.fastest:
            self.fastest = seconds
        if seconds > self.slowest:
            self.slowest = seconds

    def merge(self, other: Moments) -> None:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares
        self.fastest = min(self.fastest, other.fastest)
        self.slowest = max(self.slowest, other.slowest)

    @property
    def average(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def stddev(self) -> float:
        if not self.count:
            return 0.0
        mean = self.average
        return math.sqrt(max(self.squares / self.count - mean * mean, 0.0))


@dataclass(slots=True)
class OpResult:
    """One operation's results from one worker (picklable: the histogram is encoded)."""

    moments: Moments = field(default_factory=Moments)
    outcomes: dict[str, int] = field(default_factory=dict)
    histogram: str = ""  # HdrHistogram.encode() of successful latencies (us)


@dataclass(slots=True)
class SecondRow:
    """Second `second` of the run (0 = the first second): its sends and its completions."""

    second: int
    ok: int = 0  # successful completions
    errors: int = 0  # failed completions
    sent: int = 0  # requests handed to the network in this second, whenever they completed
    histogram: str = ""  # encoded, SERIES_DIGITS


@dataclass(slots=True)
class WorkerResult:
    """Everything one worker measured; merged by `loadgen.report.merge_results`."""

    index: int
    ops: dict[str, OpResult]
    series: list[SecondRow]
    elapsed: float  # seconds from the common start to this worker's last completion
    sent: int  # requests handed to the network (success + errors)
    unsent: int  # open loop: tickets whose send time passed the hard stop, never sent
    watch_events: OpResult | None = None  # watch workload: put-ack -> event latencies
    watch_events_from_send: OpResult | None = None  # put-send -> event (etcd's definition)
    watch_early_events: int = 0  # events seen before their put's ack (latency 0)
    watch_missing_events: int = 0  # expected events never received before the end
    notes: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this worker process's CPU time while its clients ran


class Recorder:
    """Records completions of one worker; not thread-safe (one event loop owns it, or the
    client threads call it under one lock)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self._hists: dict[str, HdrHistogram] = {}
        self._moments: dict[str, Moments] = {}
        self._outcomes: dict[str, dict[str, int]] = {}
        self.series: list[SecondRow] = []
        self._sec = 0
        self._sec_hist = new_histogram(SERIES_DIGITS)
        self._sec_ok = 0
        self._sec_err = 0
        self._sec_sent = 0
        self.ok = 0
        self.errors = 0
        self.last_end = t0
        self.event_hist = new_histogram()
        self.event_moments = Moments()
        self.event_send_hist = new_histogram()
        self.event_send_moments = Moments()
        self.last_closed: SecondRow | None = None
        self._last_closed_p99 = 0.0
        self._pending: list[tuple[str, str, float, float]] = []

    def ensure_op(self, op: str) -> None:
        if op not in self._hists:
            self._hists[op] = new_histogram()
            self._moments[op] = Moments()
            self._outcomes[op] = {}

    def record(self, op: str, outcome: str, latency: float, now: float) -> None:
        """One completed request; `latency` in seconds, `now` on the recorder's clock.

        Queued, and recorded `BATCH` at a time (and before any second closes, so every
        figure is the same as if each were recorded at once): a lone client's requests
        each begin on a process just woken, its caches taken by the cluster meanwhile, where
        the histogram's Python code one completion at a time cost ~10 µs of CPU each.
        """
        pending = self._pending
        pending.append((op, outcome, latency, now))
        if len(pending) >= BATCH:
            self._drain()

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for op, outcome, latency, now in pending:
            self._record(op, outcome, latency, now)

    def _record(self, op: str, outcome: str, latency: float, now: float) -> None:
        sec = int(now - self.t0)
        if sec != self._sec and sec > self._sec:
            self.roll(now)
        if op not in self._hists:
            self.ensure_op(op)
        outcomes = self._outcomes[op]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == SUCCESS:
            us = to_us(latency)
            self._hists[op].record_value(us)
            self._moments[op].add(latency)
            self._sec_hist.record_value(us)
            self._sec_ok += 1
            self.ok += 1
        else:
            self._sec_err += 1
            self.errors += 1
        if now > self.last_end:
            self.last_end = now

    def record_send(self, now: float) -> None:
        """One request about to be sent; `now` on the recorder's clock."""
        if int(now - self.t0) > self._sec:
            self.roll(now)
        self._sec_sent += 1

    def record_event(self, from_ack: float, from_send: float) -> None:
        """A watch event's latencies (seconds) from its put's ack and from its put's send."""
        self.event_hist.record_value(to_us(from_ack))
        self.event_moments.add(from_ack)
        self.event_send_hist.record_value(to_us(from_send))
        self.event_send_moments.add(from_send)

    def roll(self, now: float) -> None:
        """Close every second that ended before `now`, empty ones included."""
        if self._pending:
            self._drain()
        sec = int(now - self.t0)
        while self._sec < sec:
            row = SecondRow(self._sec, self._sec_ok, self._sec_err, self._sec_sent)
            if self._sec_ok:
                row.histogram = self._sec_hist.encode().decode("ascii")
                self._last_closed_p99 = self._sec_hist.get_value_at_percentile(99.0) / 1e6
                self._sec_hist = new_histogram(SERIES_DIGITS)
            else:
                self._last_closed_p99 = 0.0
            self.series.append(row)
            self.last_closed = row
            self._sec += 1
            self._sec_ok = 0
            self._sec_err = 0
            self._sec_sent = 0

    def flush(self) -> None:
        """Record what is queued and close the partial last second (end of run)."""
        self._drain()
        if self._sec_ok or self._sec_err or self._sec_sent:
            self.roll(self.t0 + self._sec + 1)

    @property
    def last_p99(self) -> float:
        """p99 (seconds) of the last closed second: the live progress figure."""
        return self._last_closed_p99

    def op_results(self) -> dict[str, OpResult]:
        return {
            op: OpResult(
                moments=self._moments[op],
                outcomes=dict(self._outcomes[op]),
                histogram=self._hists[op].encode().decode("ascii"),
            )
            for op in self._hists
        }

    def event_results(self) -> tuple[OpResult, OpResult]:
        """(from ack, from send) watch event latencies."""
        return (
            OpResult(
                moments=self.event_moments,
                outcomes={SUCCESS: self.event_moments.count},
                histogram=self.event_hist.encode().decode("ascii"),
            ),
            OpResult(
                moments=self.event_send_moments,
                outcomes={SUCCESS: self.event_send_moments.count},
                histogram=self.event_send_hist.encode().decode("ascii"),
            ),
        )
