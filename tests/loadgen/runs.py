"""`raftmon load` runs the loadgen tests share: one in a thread, one that must succeed fully."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.loadgen.conftest import run_load


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
        [
            f"--endpoints={','.join(endpoints)}",
            "--conns=3",
            f"--clients={clients}",
            f"--total={total}",
            workload,
            *extra,
        ]
    )
    assert code == 0
    assert report["failed"] == 0, report["errors"]
    assert report["succeeded"] == total
    return report
