"""Fixtures for transport tests: clusters of real transports that are always torn down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.transport.harness import Cluster


@pytest.fixture
async def make_cluster(tmp_path: object) -> AsyncIterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(n: int, **kwargs: object) -> Cluster:
        cluster = Cluster(n, str(tmp_path), **kwargs)  # type: ignore[arg-type]
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            await cluster.close()
