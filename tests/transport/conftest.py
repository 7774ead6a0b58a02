"""Fixtures for transport tests: clusters of real transports that are always torn down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

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


@pytest.fixture
def connected_cluster(
    make_cluster: Callable[..., Cluster],
) -> Callable[..., Awaitable[Cluster]]:
    """Build a cluster (same arguments as `make_cluster`), start every member, and return it
    once every member has an active stream to every other."""

    async def start(n: int, **kwargs: object) -> Cluster:
        cluster = make_cluster(n, **kwargs)
        await cluster.start_all()
        await cluster.wait_connected()
        return cluster

    return start


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.AbstractServer]]:
    """Servers a test opens itself (peer ports on plain asyncio), closed when it ends."""
    opened: list[asyncio.AbstractServer] = []
    try:
        yield opened
    finally:
        for server in opened:
            server.close()
