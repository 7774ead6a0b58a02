"""Restart after a power loss that kept the database's applied index but not the commit index.

Commit-only hard states are written without an fsync (as etcd's MustSync allows), and
SQLite commits with synchronous=NORMAL, so after a power loss the database may have
applied entries whose commit the WAL's last durable hard state does not record. The
entries themselves are always fsynced before anyone learns of them, so the member must
start, keep every applied write, and neither re-apply nor lose any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from node.wal import WAL
from tests.cluster.etcdjson import put, revision, value_of

pytestmark = pytest.mark.cluster


def rewind_commit(wal_dir: Path, by: int) -> tuple[int, int]:
    """Append a durable hard state whose commit is `by` entries lower; (old, new) commit."""
    wal, recovered = WAL.open(str(wal_dir))
    try:
        hs = recovered.hard_state
        assert hs is not None
        assert hs.commit > by
        lowered = replace(hs, commit=hs.commit - by)
        wal.save(lowered, [], must_sync=True)
    finally:
        wal.close()
    return hs.commit, lowered.commit


def test_member_restarts_when_the_db_applied_past_the_walls_commit(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(1)
    member = cluster.members[0]
    url = member.client_url
    for i in range(20):
        assert "error" not in put(url, f"pl/{i:02d}", f"v{i}")
    rev = revision(url)
    cluster.stop()
    old, new = rewind_commit(member.data_dir / "member" / "wal", by=10)
    assert new < old
    cluster.restart(member.name, timeout=30)
    cluster.wait_leader(timeout=30)
    assert revision(url) == rev, "nothing was applied twice, nothing lost"
    assert [value_of(url, f"pl/{i:02d}") for i in range(20)] == [f"v{i}" for i in range(20)]
    assert "error" not in put(url, "pl/after", "ok")  # and it keeps working
    assert revision(url) == rev + 1
