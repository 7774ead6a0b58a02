"""`raftmon load` runs the loadgen tests share against etcd and raftmon alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.loadgen.conftest import assert_open_loop_rate_held, read_series, run_load


def load_argv(
    endpoints: Sequence[str], workload: str, *flags: str, **options: int | str | bool
) -> list[str]:
    """The arguments of `raftmon load`: the endpoints, then `options` in the order given
    (`clients=6` as `--clients=6`, `target_leader=True` as `--target-leader`), then the
    workload and its own `flags`."""
    named = [
        f"--{name.replace('_', '-')}" + ("" if value is True else f"={value}")
        for name, value in options.items()
    ]
    return [f"--endpoints={','.join(endpoints)}", *named, workload, *flags]


def run_load_in_thread(
    argv: list[str], report_dir: Path | None = None
) -> tuple[threading.Thread, dict[str, Any]]:
    """Start `run_load(argv)` in a thread; `code` and `report` land in the dict when it ends.

    For tests that act on the cluster (kill, partition, scrape) while the run is live.
    """
    result: dict[str, Any] = {}

    def load() -> None:
        result["code"], result["report"] = run_load(argv, report_dir=report_dir)

    thread = threading.Thread(target=load, name="raftmon-load")
    thread.start()
    return thread, result


def run_without_errors(
    endpoints: list[str], workload: str, extra: list[str], *, clients: int, total: int
) -> dict[str, Any]:
    """`total` requests of `workload` over three connections; every one must succeed."""
    code, report = run_load(
        load_argv(endpoints, workload, *extra, conns=3, clients=clients, total=total)
    )
    assert code == 0
    assert report["failed"] == 0, report["errors"]
    assert report["succeeded"] == total
    return report


def run_open_loop(
    endpoints: list[str],
    *,
    rate: int,
    seconds: int,
    report_dir: Path,
    put_flags: Sequence[str] = (),
    **options: int | str | bool,
) -> dict[str, Any]:
    """An open-loop `put` run at `rate` for `seconds`: every ticket is sent on schedule, and
    the per-second series holds the rate (`assert_open_loop_rate_held`). `options` are
    further options of `raftmon load` (`conns=3`), as `load_argv` spells them."""
    started = time.monotonic()
    code, report = run_load(
        # Enough clients that a slow second never leaves a due ticket without a client
        # (which would make the next second send a catch-up burst).
        load_argv(
            endpoints, "put", *put_flags, **options, clients=50, rate=rate, duration=f"{seconds}s"
        ),
        report_dir=report_dir,
    )
    wall = time.monotonic() - started
    assert code == 0
    assert report["mode"] == "open"
    assert report["sent"] == seconds * rate  # the scheduler's count, whatever the latencies were
    assert report["unsent"] == 0
    assert_open_loop_rate_held(report, read_series(report_dir), rate, wall)
    return report
