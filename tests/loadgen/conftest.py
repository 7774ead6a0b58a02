"""Fixtures for the load generator's tests: real etcd members, a fake endpoint, a CLI runner."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.cli import main
from tests.helpers import require_tool
from tests.loadgen.etcd_cluster import EtcdCluster
from tests.loadgen.fake_etcd import FakeEtcd


@pytest.fixture(scope="session")
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One real etcd 3.4 member, shared by the tests that only add load to it."""
    cluster = EtcdCluster(require_tool("etcd"), tmp_path_factory.mktemp("etcd1"), size=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A real three-member etcd 3.4 cluster on loopback."""
    cluster = EtcdCluster(require_tool("etcd"), tmp_path_factory.mktemp("etcd3"), size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fake() -> Iterator[FakeEtcd]:
    with FakeEtcd() as server:
        yield server


def run_load(argv: list[str], report_dir: Path | None = None) -> tuple[int, dict[str, Any]]:
    """Run `raftmon load ARGV --json --no-progress`; return the exit code and the JSON report."""
    out = io.StringIO()
    extra = ["--json", "--no-progress"]
    if report_dir is not None:
        extra.append(f"--report-dir={report_dir}")
    with contextlib.redirect_stdout(out):
        code = main([*extra, *argv])
    text = out.getvalue()
    return code, (json.loads(text) if code == 0 and text.strip() else {})
