"""The live progress bar: workers' ticks summed and drawn with rate, p99 and errors."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from loadgen.progress import ProgressDisplay
from loadgen.runner import Progress


def string_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    # A terminal, so rich draws (the display is transient: it redraws in place).
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def tick(worker: int, ok: int, errors: int, last_second_ok: int, p99: float) -> Progress:
    return Progress(
        worker=worker,
        ok=ok,
        errors=errors,
        last_second_ok=last_second_ok,
        p99=p99,
        planned=1000,
        elapsed=2.0,
    )


def draw(enabled: bool, planned: int, *ticks: Progress) -> str:
    """What a `put` run's progress display shows on a terminal after `ticks`, as plain text."""
    console, out = string_console()
    with ProgressDisplay(
        enabled=enabled, workload="put", planned=planned, duration=None, console=console
    ) as display:
        for t in ticks:
            display.update(t)
    return Text.from_ansi(out.getvalue()).plain


def test_progress_bar_shows_summed_rate_worst_p99_and_summed_errors() -> None:
    screen = draw(
        True,
        1000,
        tick(worker=0, ok=300, errors=4, last_second_ok=120, p99=0.0125),
        tick(worker=1, ok=200, errors=3, last_second_ok=80, p99=0.0341),
        # A later tick of worker 0 replaces its earlier one instead of adding to it.
        tick(worker=0, ok=340, errors=5, last_second_ok=130, p99=0.0125),
    )
    last = [line for line in screen.splitlines() if "rate" in line][-1]
    words = " ".join(last.split())  # the columns are padded; compare words
    assert words.startswith("put ")
    assert " 548/1000 " in words  # done = (340 + 5) + (200 + 3): successes and errors
    assert " rate 210/s " in words  # 130 + 80 successes in the last closed second
    assert " p99 34.10ms " in words  # the worst worker's p99: an upper bound across workers
    assert " errors 8 " in words  # 5 + 3


def test_progress_bar_draws_nothing_when_disabled() -> None:
    assert draw(False, 10, tick(worker=0, ok=5, errors=1, last_second_ok=5, p99=0.001)) == ""
