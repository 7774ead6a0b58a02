"""Auto-compaction policies: etcd 3.4's --auto-compaction-mode / --auto-compaction-retention.

Pure objects: the driver (on the leader only, as etcd pauses the compactor on
followers) calls `next_compaction(now, current_revision)` periodically with a
monotonic `now` in seconds; a non-None answer is the revision to propose a
CompactionRequest for. Nothing here reads a clock or touches the store.

etcd 3.4 semantics implemented
------------------------------
revision mode, retention N (an integer): every 5 minutes, compact to
    current_revision - N, unless that is <= 0 or the same revision as the
    previous compaction. The first check happens 5 minutes after start.

periodic mode, retention D (a Go duration such as "30m" or "72h", or a bare
    integer meaning hours): the revision is sampled every D/10 (capped at
    6 minutes, i.e. interval/10 with interval = min(D, 1 h)), keeping the last
    D/interval*10 samples, so the oldest sample is the revision from ~D ago.
    The first compaction happens D after start; later ones every
    min(D, 1 h) after the previous one, each to the oldest sample. With
    "72h" that is: keep 72 hours of history, compact every hour.

Retention "0" disables auto-compaction (`make_compactor` returns a policy that
never compacts). A failed or lost proposal is simply retried at the next
interval: compaction is idempotent (an already-compacted revision answers
ErrCompacted, which etcd also treats as success).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from node.duration import parse_duration

REVISION_CHECK_SECONDS = 300.0  # etcd's revInterval (5 minutes)
HOUR = 3600.0
RETRY_DIVISOR = 10  # etcd's retryDivisor


class CompactionPolicy(Protocol):
    def next_compaction(self, now: float, current_revision: int) -> int | None: ...


class Never:
    """Auto-compaction disabled (retention 0)."""

    def next_compaction(self, now: float, current_revision: int) -> int | None:
        return None


class RevisionCompactor:
    """Keep the last `retention` revisions, checked every 5 minutes."""

    def __init__(self, retention: int, *, check_seconds: float = REVISION_CHECK_SECONDS) -> None:
        if retention <= 0:
            raise ValueError("revision retention must be > 0")
        self.retention = retention
        self.check_seconds = check_seconds
        self._next_check: float | None = None
        self._last = 0

    def next_compaction(self, now: float, current_revision: int) -> int | None:
        if self._next_check is None:
            self._next_check = now + self.check_seconds  # first check one interval after start
            return None
        if now < self._next_check:
            return None
        self._next_check = now + self.check_seconds
        rev = current_revision - self.retention
        if rev <= 0 or rev == self._last:
            return None
        self._last = rev
        return rev


class PeriodicCompactor:
    """Keep `period` seconds of history; compact every min(period, 1 h)."""

    def __init__(self, period: float) -> None:
        if period <= 0:
            raise ValueError("periodic retention must be > 0")
        self.period = period
        self.interval = min(period, HOUR)  # etcd's getCompactInterval
        self.sample_every = self.interval / RETRY_DIVISOR  # etcd's getRetryInterval
        self.retentions = max(1, int(period / self.sample_every))  # etcd's getRetentions
        self._revs: deque[int] = deque()
        self._next_sample: float | None = None
        self._last_success = 0.0
        self._wait = period  # the first compaction waits a whole period

    def next_compaction(self, now: float, current_revision: int) -> int | None:
        if self._next_sample is None:
            self._last_success = now
            self._record(current_revision)
            self._next_sample = now + self.sample_every
            return None
        if now < self._next_sample:
            return None
        self._next_sample = now + self.sample_every
        answer = None
        if now - self._last_success >= self._wait:
            self._wait = self.interval
            self._last_success = now
            answer = self._revs[0]  # the revision sampled ~period ago
        self._record(current_revision)
        return answer

    def _record(self, rev: int) -> None:
        self._revs.append(rev)
        while len(self._revs) > self.retentions:
            self._revs.popleft()


def parse_retention(mode: str, retention: str) -> float:
    """etcd's parseCompactionRetention: an integer is hours (periodic) or revisions."""
    text = retention.strip()
    if mode == "revision":
        try:
            value = int(text)
        except ValueError as err:
            raise ValueError(f"revision retention must be an integer, got {retention!r}") from err
        if value < 0:
            raise ValueError("retention must be >= 0")
        return float(value)
    if mode != "periodic":
        raise ValueError(f"unknown auto-compaction mode {mode!r} (periodic or revision)")
    try:
        hours = int(text)
    except ValueError:
        return parse_duration(text)
    if hours < 0:
        raise ValueError("retention must be >= 0")
    return hours * HOUR


def make_compactor(mode: str, retention: str) -> CompactionPolicy:
    """The policy for etcd's flags; retention "0" disables auto-compaction."""
    value = parse_retention(mode, retention)
    if value <= 0:
        return Never()
    if mode == "revision":
        return RevisionCompactor(int(value))
    return PeriodicCompactor(value)
