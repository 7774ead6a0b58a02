"""Real members for the gateway's input tests: one raftmon member, one etcd 3.4 beside it.

Both are module-scoped and always stopped; a failing test prints the member's log tail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.cluster import LocalCluster
from tests.helpers import require_tool
from tests.loadgen.etcd_cluster import EtcdCluster

FAST = ["--heartbeat-interval=50", "--election-timeout=500"]


@pytest.fixture(scope="module")
def raftmon1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("raftmon1"), 1, extra_args=FAST)
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs_tail(40))
        raise
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(require_tool("etcd"), tmp_path_factory.mktemp("etcd1"), size=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def both(raftmon1: LocalCluster, etcd1: EtcdCluster) -> dict[str, str]:
    """Client URL of each implementation, by name."""
    return {"raftmon": raftmon1.endpoints[0], "etcd": etcd1.endpoints[0]}
