"""Real members for the gateway's input tests: one raftmon member, one etcd 3.4 beside it.

`raftmon1` (module-scoped) and `etcd1` come from tests/conftest.py; both are always
stopped, and a failed start prints the member's log tail.
"""

from __future__ import annotations

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster


@pytest.fixture(scope="module")
def both(raftmon1: LocalCluster, etcd1: EtcdCluster) -> dict[str, str]:
    """Client URL of each implementation, by name."""
    return {"raftmon": raftmon1.endpoints[0], "etcd": etcd1.endpoints[0]}
