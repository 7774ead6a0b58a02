"""Where the benches leave their headline figures, so a goal is read back from a run.

Each side-by-side bench appends one JSON line per run to RAFTMON_BENCH_RESULTS (default
`.bench-results/results.jsonl` in the checkout): the bench's name, the commit it ran
(with `+dirty` when the work tree had changes), when, the load average, the run's
parameters and each side's figures. tests/bench/scorecard.py reads the file and says,
goal by goal, what that commit's runs measured: the README quotes a run, not a memory.
Appending (never rewriting) keeps every run of a long `make bench-goals` even when a
later bench fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]


def results_path() -> Path:
    """The results file: RAFTMON_BENCH_RESULTS, else `.bench-results/results.jsonl`."""
    configured = os.environ.get("RAFTMON_BENCH_RESULTS", "")
    return Path(configured) if configured else CHECKOUT / ".bench-results" / "results.jsonl"


def current_commit(checkout: Path = CHECKOUT) -> str:
    """HEAD's short hash, `+dirty` when tracked files differ from it; `unknown` without git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if changed else head


def record(
    bench: str,
    params: Mapping[str, Any],
    sides: Mapping[str, Mapping[str, Any]],
    path: Path | None = None,
) -> dict[str, Any]:
    """Append one run's figures; returns the line written (also for printing)."""
    line = {
        "bench": bench,
        "commit": current_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "params": dict(params),
        "sides": {name: dict(figures) for name, figures in sides.items()},
    }
    target = path or results_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")
    return line


def read_runs(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Every recorded run in file order; a torn last line (a bench killed mid-write) is skipped."""
    source = path or results_path()
    if not source.exists():
        return
    for text in source.read_text(encoding="utf-8").splitlines():
        try:
            run = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(run, dict) and "bench" in run and "sides" in run:
            yield run
