"""Fixtures for the load generator's tests: real etcd members, a fake endpoint, a CLI runner.

`etcd1` (one real etcd 3.4 member, shared by the tests that only add load to it) comes
from tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from lab.etcd_cluster import EtcdCluster
from loadgen.cli import main
from loadgen.client import parse_metrics
from tests.helpers import etcd_cluster
from tests.loadgen.fake_etcd import FakeEtcd

# etcd 3.4 counts applied puts in the debugging family; 3.5+ and raftmon in etcd_mvcc_*.
PUT_COUNTERS = ("etcd_mvcc_put_total", "etcd_debugging_mvcc_put_total")


class Scraped(Protocol):
    """A raftmon or etcd member: /metrics on the metrics URL (or, for etcd, the client URL)."""

    name: str
    client_url: str

    @property
    def metrics_url(self) -> str: ...


def put_count(member: Scraped) -> float:
    """The member's own applied-put counter (etcd's family names)."""
    for base in dict.fromkeys((member.metrics_url, member.client_url)):
        try:
            with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
                samples = parse_metrics(resp.read().decode())
        except OSError:
            continue
        for name in PUT_COUNTERS:
            value = samples.get(name)
            if value is not None:
                return value
    raise AssertionError(f"no put counter ({PUT_COUNTERS}) on {member.name}")


@pytest.fixture(scope="session")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A real three-member etcd 3.4 cluster on loopback."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd3"), size=3) as cluster:
        yield cluster


@pytest.fixture
def fake() -> Iterator[FakeEtcd]:
    with FakeEtcd() as server:
        yield server


def run_load(argv: list[str], report_dir: Path | None = None) -> tuple[int, dict[str, Any]]:
    """Run `raftmon load ARGV --json --no-progress`; return the exit code and the JSON report."""
    out = io.StringIO()
    extra = ["--json", "--no-progress"]
    if report_dir is not None:
        extra.append(f"--report-dir={report_dir}")
    with contextlib.redirect_stdout(out):
        code = main([*extra, *argv])
    text = out.getvalue()
    return code, (json.loads(text) if code == 0 and text.strip() else {})


def read_series(report_dir: Path) -> list[dict[str, float]]:
    """The per-second rows of `timeseries.csv` in a `--report-dir`, as numbers."""
    with (report_dir / "timeseries.csv").open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# A ticket may leave up to a loop-timer tick (~1 ms) before its due time (see runner.py).
EARLY_WAKE_SLACK = 0.01


def assert_open_loop_rate_held(
    report: dict[str, Any], rows: list[dict[str, float]], rate: float, wall_seconds: float
) -> None:
    """`--rate` holds: never ahead of the schedule, no burst second, mean rate near the target.

    Checks what sending everything at once, early or late, could not pass, with no
    tight timing:
    - ticket k is due at k/rate, so the last of `sent` tickets cannot leave before
      (sent - 1)/rate: a hard floor, on the wall clock and in the report;
    - for the same reason the requests sent by the end of second s (the CSV's
      `sent`, summed) never exceed the rate * (s + 1) due by then;
    - no single second sends much more than the rate (catches waiting, then
      bursting). Open-loop catch-up after a stall may legitimately exceed it, so
      callers give the run clients to spare: it would take the generator's own
      loop stalling for half a second to break this bound;
    - the achieved mean rate lies in a generous band around the target.
    Completions per second (`throughput`) may bunch up: only their sum is checked.
    """
    sent = report["sent"]
    floor = (sent - 1) / rate
    context = f"rate={rate} sent={sent} wall={wall_seconds:.3f}s rows={rows}"
    assert wall_seconds >= floor - EARLY_WAKE_SLACK, context
    assert report["total_seconds"] >= floor - EARLY_WAKE_SLACK, context
    assert sum(r["sent"] for r in rows) == sent, context
    assert sum(r["throughput"] for r in rows) == report["succeeded"], context
    sent_by_then = 0.0
    for r in rows:
        sent_by_then += r["sent"]
        due = rate * (r["second"] + 1 + EARLY_WAKE_SLACK)
        assert sent_by_then <= due + 1, f"ahead of schedule in second {r['second']}; {context}"
    assert max(r["sent"] for r in rows) <= rate * 1.5 + 2, context
    achieved = report["requests_per_second"]
    assert 0.5 * rate <= achieved <= 1.1 * rate, f"achieved {achieved:.1f}/s; {context}"
