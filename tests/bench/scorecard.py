"""Issue 17's goals, judged from the runs the benches recorded (tests/bench/results.py).

`python -m tests.bench.scorecard [--commit REV] [--results FILE]` prints one Markdown row
per goal: what the latest runs of that commit measured and whether the goal is met, not
met, or not measured by them (a goal at every size needs a run at 10k, 100k and 500k;
the soak and telemetry goals need 10-minute runs). `make bench-goals` prints it at the end,
so the two runs the issue asks for are quoted from the file, with their commit.
Behaviour the benches cannot show (a resumed follower adds no leader change, a request
waits for the election) is held by tests and named as such.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.results import current_commit, read_runs

GOAL_SIZES = (10_000, 100_000, 500_000)
LONG_RUN_SECONDS = 600
SNAP_DIR_LIMIT_BYTES = 1 << 20  # etcd's member/snap holds a few KB; a db copy is megabytes

Run = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    goal: str
    measured: str
    met: bool | None  # None: these runs do not measure it
    by_tests: bool = False  # behaviour asserted by `make test`, not measured by a bench

    @property
    def word(self) -> str:
        if self.by_tests:
            return "tests"
        return {True: "met", False: "NOT met", None: "not measured"}[self.met]


def latest(runs: Iterable[Run], bench: str, **params: Any) -> Run | None:
    """The last run of `bench` whose params include `params` (later runs replace earlier)."""
    found = None
    for run in runs:
        if run["bench"] == bench and all(run["params"].get(k) == v for k, v in params.items()):
            found = run
    return found


def ratio(run: Run, figure: str) -> float:
    ours, theirs = run["sides"]["raftmon"][figure], run["sides"]["etcd"][figure]
    if ours is None or theirs is None:
        return math.nan
    return float(ours) / float(theirs) if theirs else (1.0 if ours == theirs else math.inf)


def _sizes(runs: Sequence[Run], bench: str) -> dict[int, Run]:
    return {size: run for size in GOAL_SIZES if (run := latest(runs, bench, keys=size))}


def _every_size(goal: str, runs: Sequence[Run], bench: str, figure: str, limit: float) -> Verdict:
    by_size = _sizes(runs, bench)
    ratios = {size: ratio(run, figure) for size, run in by_size.items()}
    if not by_size:
        return Verdict(goal, "no run", None)
    text = ", ".join(f"{size // 1000}k {r:.2f}x" for size, r in ratios.items())
    missing = [f"{size // 1000}k" for size in GOAL_SIZES if size not in by_size]
    if any(not r <= limit for r in ratios.values()):
        return Verdict(goal, text, False)
    if missing:
        return Verdict(goal, f"{text} (no run at {', '.join(missing)})", None)
    return Verdict(goal, text, True)


def compaction_at_500k(runs: Sequence[Run]) -> Verdict:
    goal = "compaction + defrag at 500k: 0 leader changes, 0 failed puts"
    run = latest(runs, "scale", keys=500_000)
    if run is None:
        return Verdict(goal, "no run at 500k", None)
    ours = run["sides"]["raftmon"]
    changes, failed = ours["compact_defrag_leader_changes"], ours["compact_defrag_puts_failed"]
    return Verdict(goal, f"{changes:.0f} and {failed:.0f}", changes == 0 and failed == 0)


def soak_at_100k(runs: Sequence[Run]) -> Verdict:
    goal = "10-min soak at 100k, auto compaction: 0 leader changes, 0 failed, puts/s ≥ 1.0x"
    run = latest(runs, "scale", keys=100_000, soak_seconds=LONG_RUN_SECONDS)
    if run is None:
        return Verdict(goal, "no 600 s soak at 100k", None)
    ours = run["sides"]["raftmon"]
    speed = ratio(run, "soak_puts_per_s")
    changes, failed = ours["soak_leader_changes"], ours["soak_failed"]
    met = changes == 0 and failed == 0 and speed >= 1.0
    return Verdict(goal, f"{changes:.0f}, {failed:.0f}, {speed:.2f}x", met)


def snapshot_files(runs: Sequence[Run]) -> Verdict:
    goal = "no full db copy kept in member/snap (≤ 1 MiB)"
    by_size = _sizes(runs, "scale")
    sizes = {size: run["sides"]["raftmon"]["snap_dir_bytes"] for size, run in by_size.items()}
    text = ", ".join(f"{size // 1000}k {b / 1024:.0f} KiB" for size, b in sizes.items())
    if not sizes:
        return Verdict(goal, "no scale run", None)
    return Verdict(goal, text, all(b <= SNAP_DIR_LIMIT_BYTES for b in sizes.values()))


def catch_up(runs: Sequence[Run]) -> Verdict:
    goal = "a lagging follower catches up in ≤ 1.2x etcd's time (every size)"
    return _every_size(goal, runs, "scale", "catchup_seconds", 1.2)


def restart(runs: Sequence[Run]) -> Verdict:
    goal = "restart to first write ≤ 1.5x etcd's (every size)"
    return _every_size(goal, runs, "restart", "first_write_seconds", 1.5)


def telemetry(runs: Sequence[Run]) -> Verdict:
    goal = "10-min loaded run: RTT p99 ≤ 3x, heartbeat failures ≤ etcd's, no alert on raftmon only"
    run = latest(runs, "telemetry", seconds=LONG_RUN_SECONDS)
    if run is None:
        return Verdict(goal, "no 600 s telemetry run", None)
    ours, theirs = run["sides"]["raftmon"], run["sides"]["etcd"]
    rtt = ratio(run, "rtt_p99")
    beats = f"{ours['heartbeat_failures']:.0f} vs {theirs['heartbeat_failures']:.0f}"
    if ours["alerts"] is None:
        return Verdict(goal, f"RTT p99 {rtt:.2f}x, {beats}, alerts not checked", None)
    only_ours = sorted(set(ours["alerts"]) - set(theirs["alerts"]))
    met = rtt <= 3.0 and ours["heartbeat_failures"] <= theirs["heartbeat_failures"]
    text = f"RTT p99 {rtt:.2f}x, {beats}, raftmon only: {', '.join(only_ours) or 'none'}"
    return Verdict(goal, text, met and not only_ours)


def faulted(runs: Sequence[Run]) -> Verdict:
    goal = "faulted run: failed + indeterminate ≤ 1.2x etcd's"
    run = latest(runs, "faulted")
    if run is None:
        return Verdict(goal, "no run", None)
    value = ratio(run, "failed_plus_indeterminate")
    return Verdict(goal, f"{value:.2f}x", value <= 1.2)


def latency(runs: Sequence[Run]) -> Verdict:
    goal = "puts/s ≥ 1.2x at 64 clients and single-client p50 ≤ 1.0x (gRPC)"
    run = latest(runs, "latency")
    if run is None:
        return Verdict(goal, "no run", None)
    speed, p50 = ratio(run, "puts_per_second_x64"), ratio(run, "p50_seconds_x1")
    return Verdict(goal, f"{speed:.2f}x / {p50:.2f}x", speed >= 1.2 and p50 <= 1.0)


def load_tool(runs: Sequence[Run]) -> Verdict:
    goal = "`raftmon load` ≤ 100 µs CPU per request (some protocol, every case, both clusters)"
    run = latest(runs, "loadgen")
    if run is None:
        return Verdict(goal, "no run", None)
    worst: dict[str, float] = {}
    for figures in run["sides"].values():
        for case, value in figures.items():
            protocol = case.split()[0]
            worst[protocol] = max(worst.get(protocol, 0.0), float(value))
    text = ", ".join(f"{protocol} worst {value:.0f} µs" for protocol, value in worst.items())
    return Verdict(goal, text, bool(worst) and min(worst.values()) <= 100.0)


def by_tests(goal: str, where: str) -> Callable[[Sequence[Run]], Verdict]:
    return lambda _runs: Verdict(goal, where, None, by_tests=True)


GOALS: tuple[Callable[[Sequence[Run]], Verdict], ...] = (
    compaction_at_500k,
    soak_at_100k,
    snapshot_files,
    catch_up,
    telemetry,
    by_tests(
        "a paused and resumed follower adds no leader change",
        "tests/cluster/test_leader_changes.py",
    ),
    by_tests(
        "a request during an election waits for the new leader",
        "tests/cluster/test_election_wait.py",
    ),
    faulted,
    latency,
    restart,
    load_tool,
)


def scorecard(runs: Sequence[Run]) -> list[Verdict]:
    return [judge(runs) for judge in GOALS]


def render(commit: str, runs: Sequence[Run], verdicts: Sequence[Verdict]) -> str:
    loads = [run["load_average"][0] for run in runs]
    span = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
    lines = [
        f"issue 17's goals at {commit}: {len(runs)} recorded runs, load average {span}",
        "",
        "| goal | measured (raftmon vs etcd 3.4) | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {v.goal} | {v.measured} | {v.word} |" for v in verdicts]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="", help="the runs of this commit (default: HEAD)")
    parser.add_argument("--results", type=Path, default=None, help="the results file")
    args = parser.parse_args(argv)
    commit = args.commit or current_commit()
    runs = [run for run in read_runs(args.results) if run["commit"] == commit]
    print(render(commit, runs, scorecard(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
