"""Fixtures that start real raftmon member processes on loopback and always stop them.

Timings are shortened for tests (50 ms heartbeat, 500 ms election timeout) so
elections and request timeouts resolve quickly; behaviour is etcd's either way.
A failing test prints the tail of every member's log.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from tests.helpers import FAST, running_cluster, start_cluster

__all__ = ["FAST", "start_cluster"]  # the cluster tests import them from here


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A shared healthy 3-member cluster for tests that do not break it."""
    with running_cluster(tmp_path_factory.mktemp("cluster3"), 3) as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., LocalCluster]]:
    """Factory for a cluster owned by one test (tests that kill, pause or partition)."""
    started: list[LocalCluster] = []

    def make(size: int = 3, extra: list[str] | None = None) -> LocalCluster:
        cluster = start_cluster(tmp_path / f"c{len(started)}", size, extra)
        started.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in started:
            if request.node.stash.get(FAILED, False):
                print(cluster.logs_tail(40))
            cluster.stop()
