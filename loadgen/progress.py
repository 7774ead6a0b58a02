"""The live progress bar (rich): done/planned, current rate, p99 of the last second, errors.

Shown on stderr only when stderr is a terminal and `--no-progress` is absent, so
pipes, CI logs and `--json` output stay clean. A caller (a test) may pass its own
`Console` instead; it is then drawn there whatever stderr is.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from loadgen.runner import Progress as Tick


class ProgressDisplay:
    """Sums the latest tick of each worker and shows it; a no-op when disabled."""

    def __init__(
        self,
        *,
        enabled: bool,
        workload: str,
        planned: int | None,
        duration: float | None,
        console: Console | None = None,
    ) -> None:
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self._console = console if console is not None else Console(stderr=True)
        self._planned = planned
        self._duration = duration
        self._latest: dict[int, Tick] = {}
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._workload = workload

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:>8.0f}/{task.fields[of]}"),
                TextColumn("rate [cyan]{task.fields[rate]:>8}/s"),
                TextColumn("p99 [magenta]{task.fields[p99]:>9}"),
                TextColumn("errors [red]{task.fields[errors]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            total = self._planned if self._planned is not None else self._duration
            self._task = self._progress.add_task(
                self._workload, total=total, of=total or "?", rate="-", p99="-", errors=0
            )
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def update(self, tick: Tick) -> None:
        """Record one worker's tick and redraw (safe from any thread)."""
        with self._lock:
            self._latest[tick.worker] = tick
            ticks = list(self._latest.values())
        if self._progress is None or self._task is None:
            return
        done = sum(t.ok + t.errors for t in ticks)
        completed = done if self._planned is not None else max(t.elapsed for t in ticks)
        p99 = max(t.p99 for t in ticks)  # an upper bound across workers; exact in the report
        self._progress.update(
            self._task,
            completed=completed,
            rate=sum(t.last_second_ok for t in ticks),
            p99=f"{p99 * 1e3:.2f}ms",
            errors=sum(t.errors for t in ticks),
        )
