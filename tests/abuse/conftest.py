"""Real member processes for the abuse tests; each test owns its cluster and stops it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]


@pytest.fixture
def cluster_of(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Start a cluster (etcd's default timings unless told) and always stop it."""
    started: list[LocalCluster] = []

    def make(size: int = 3, extra: list[str] | None = None, **kwargs: object) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"c{len(started)}", size, extra_args=extra, **kwargs)  # type: ignore[arg-type]
        started.append(cluster)
        cluster.start()
        return cluster

    try:
        yield make
    except BaseException:
        for cluster in started:
            print(cluster.logs_tail(40))
        raise
    finally:
        for cluster in started:
            cluster.stop()
