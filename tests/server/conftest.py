"""The in-process member that server tests drive by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.server import EtcdServer
from tests.server.configs import fast_m1


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    """m1, built but never started: the test hands it entries and messages itself.

    Closing the loop, store and WAL after the test keeps file handles and SQLite
    connections from leaking into the next test's temporary directory.
    """
    member = EtcdServer(fast_m1(tmp_path))
    try:
        yield member
    finally:
        member.loop.close()
        member.kv.close()
        member.wal.close()
