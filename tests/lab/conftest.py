"""Every lab run, once per session, on one shared Prometheus + Alertmanager + webhook stack.

The runs are independent (each has its own cluster and `cluster` label), so they run a
few at a time (RAFTMON_LAB_CONCURRENCY, default 3): all seven scenarios, their control
runs and the two etcd variants take about 2.5 minutes on 2 cores instead of 7-8.
Each test then reads its run's result; a failure prints the run's timeline, the
notifications the webhook received and the members' log tails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.lab.prom import LabStack
from node.lab.runtime import RunResult
from node.lab.scenarios import all_runs, run_specs
from tests.helpers import require_tool


@pytest.fixture(scope="session")
def lab_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunResult]]:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    require_tool("etcd")
    base: Path = tmp_path_factory.mktemp("lab")
    stack = LabStack(base / "monitoring")
    stack.start()
    try:
        concurrency = int(os.environ.get("RAFTMON_LAB_CONCURRENCY", "3"))
        results = run_specs(all_runs(), stack, base, concurrency=concurrency)
        yield {r.run: r for r in results}
    finally:
        stack.stop()


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
