"""Every lab run, once per session, on one shared Prometheus + Alertmanager + webhook stack.

The runs are independent (each has its own cluster and `cluster` label), so they run a
few at a time (RAFTMON_LAB_CONCURRENCY, default 4: the runs mostly wait on alert windows),
longest first: the session's 20 runs take about 3 minutes on 2 cores instead of 12.
The TLS_SCENARIOS run a second time on mTLS clusters (`raftmon lab --tls`), in the same
pool and on the same Prometheus, which therefore starts with the session CA's tls_config
and scrapes plain and https members side by side.
Each test then reads its run's result; a failure prints the run's timeline, the
notifications the webhook received and the members' log tails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.runtime import RunResult
from lab.scenarios import SCENARIOS, RunSpec, all_runs, lab_stack, run_specs, with_tls
from tests.helpers import require_tool

# Scenarios also run with --tls: the cheapest with a control run that still goes fault ->
# metric -> alert -> route (both runs in parallel with the rest: about +35 s in all).
TLS_SCENARIOS = ("slow-disk",)
TLS_RUNS = [with_tls(r) for name in TLS_SCENARIOS for r in SCENARIOS[name].runs]
# The membership scenarios on etcd 3.4 (the lab's runs checked against real etcd) run
# under `make test-long` (marked slow), on a stack of their own: in the shared session
# they cost about 45 s of `make test`'s 20 minutes. Their raftmon runs stay here.
ETCD_MEMBERSHIP_RUNS = ("replace-member-etcd", "grow-etcd")


def slow_on_etcd(runs: list[str]) -> list[object]:
    """Test parameters: the etcd membership runs marked slow, the rest as they are."""
    return [
        pytest.param(r, marks=pytest.mark.slow) if r in ETCD_MEMBERSHIP_RUNS else r for r in runs
    ]


def _run_session(base: Path, specs: list[RunSpec]) -> Iterator[dict[str, RunResult]]:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    require_tool("etcd")
    stack, authority = lab_stack(base, tls=True)
    stack.start()
    try:
        concurrency = int(os.environ.get("RAFTMON_LAB_CONCURRENCY", "4"))
        results = run_specs(specs, stack, base, concurrency=concurrency, authority=authority)
        yield {r.run: r for r in results}
    finally:
        stack.stop()


# The longest runs start first, so the pool does not end on one long run while the other
# workers idle (seconds each took in one session at 005ab2d, 3 at a time on 2 cores;
# 20 runs: 251 s in catalogue order, 220 s longest first, 183 s 4 at a time).
# A run not listed starts after these, in catalogue order.
LONGEST_FIRST = (
    "even-members",  # 57
    "grow",  # 50
    "slow-network",  # 50
    "slow-disk-control-tls",  # 37
    "slow-disk-tls",  # 37
    "slow-disk",  # 37
    "slow-disk-control",  # 35
    "replace-member",  # 34
    "member-down-etcd",  # 33
    "grow-control",  # 30
    "member-down",  # 28
    "partitions-4",  # 27
)


def session_specs() -> list[RunSpec]:
    """Every run of `make test`'s lab session (the TLS ones too), longest first."""
    specs = [*TLS_RUNS, *(r for r in all_runs() if r.run not in ETCD_MEMBERSHIP_RUNS)]
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(specs, key=lambda r: rank.get(r.run, len(rank)))


@pytest.fixture(scope="session")
def lab_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunResult]]:
    yield from _run_session(tmp_path_factory.mktemp("lab"), session_specs())


@pytest.fixture(scope="session")
def etcd_membership_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, RunResult]]:
    specs = [r for r in all_runs() if r.run in ETCD_MEMBERSHIP_RUNS]
    yield from _run_session(tmp_path_factory.mktemp("lab-etcd-membership"), specs)


@pytest.fixture(scope="session")
def any_run(
    lab_results: dict[str, RunResult], request: pytest.FixtureRequest
) -> Callable[[str], RunResult]:
    """A run's result, from the shared session or, for the slow etcd membership runs,
    their own (started only when a slow test asks for one)."""

    def get(run: str) -> RunResult:
        if run in ETCD_MEMBERSHIP_RUNS:
            results: dict[str, RunResult] = request.getfixturevalue("etcd_membership_results")
            return results[run]
        return lab_results[run]

    return get


def explain(result: RunResult) -> str:
    """What a human needs when a run fails: checks, timeline, notifications, logs."""
    lines = [f"run {result.run} ({result.target}) error={result.error or '-'}"]
    lines += [f"FAILED CHECK: {c.text}: {c.detail}" for c in result.failed_checks()]
    lines.append("all checks:")
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.text} {c.detail}" for c in result.checks]
    lines.append("timeline:")
    lines += [f"  {e.t:6.1f}s {e.kind:<8} {e.text}" for e in result.events]
    lines.append("notifications:")
    lines += [
        f"  {n.receiver:<7} {n.status:<8} {n.alertname} {n.instance}" for n in result.notifications
    ]
    lines.append("member logs (tail):")
    lines.append(result.logs[-4000:])
    return "\n".join(lines)
