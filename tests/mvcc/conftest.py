"""Fixtures for the MVCC tests: a store in tmp_path and a tiny stand-in for the Raft log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.children import spawn
from node.errors import MvccError
from node.mvcc import codec
from node.mvcc.observer import NullBackendObserver
from node.mvcc.store import ApplyResult, KVStore


class Log:
    """Assigns Raft indexes and request ids, applies entries, returns responses or raises."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.index = store.applied_index()
        self.entries: list[tuple[int, bytes]] = []

    def entry(self, req: Any) -> tuple[int, bytes]:
        self.index += 1
        e = (self.index, codec.encode_request(self.index * 10, req))
        self.entries.append(e)
        return e

    def batch(self, *reqs: Any) -> list[ApplyResult]:
        return self.store.apply_batch([self.entry(r) for r in reqs])

    def apply(self, req: Any) -> Any:
        (result,) = self.batch(req)
        assert result.request_id == self.index * 10
        if result.error is not None:
            raise result.error
        return result.response

    def error(self, req: Any) -> MvccError:
        (result,) = self.batch(req)
        assert result.error is not None, f"expected an error, got {result.response}"
        return result.error


class OnCommit(NullBackendObserver):
    """A store observer that hands each commit's duration to `hook`; a test sets it as
    `store.hooks` (patching the shared default observer would reach every later store)."""

    def __init__(self, hook: Callable[[float], None]) -> None:
        self._hook = hook

    def on_commit(self, seconds: float) -> None:
        self._hook(seconds)


def sigkill_when_ready(code: str, *args: str) -> None:
    """Run `code` in a child interpreter and SIGKILL it once it prints "ready"."""
    child = spawn(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "member" / "db")


@pytest.fixture
def store(db_path: str) -> Iterator[KVStore]:
    s = KVStore.open(db_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def raft(store: KVStore) -> Log:
    return Log(store)
