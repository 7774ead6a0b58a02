"""The two clusters every side-by-side bench measures: raftmon's and a real etcd 3.4's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster

# A side: its client URLs and its members' pids (for their CPU time).
Side = tuple[list[str], list[int]]


@contextmanager
def raftmon_and_etcd(base: Path, etcd: str, size: int = 3) -> Iterator[dict[str, Side]]:
    """Both clusters started, each with a leader; {"raftmon": side, "etcd": side}.

    Both are stopped on the way out, whatever happened inside.
    """
    with LocalCluster(base / "raftmon", size) as ours:
        ours.wait_leader()
        theirs = EtcdCluster(etcd, base / "etcd", size)
        theirs.start()
        try:
            theirs.wait_leader()
            yield {
                "raftmon": (ours.endpoints, [m.proc.pid for m in ours.members if m.proc]),
                "etcd": (theirs.endpoints, [m.proc.pid for m in theirs.members if m.proc]),
            }
        finally:
            theirs.stop()
