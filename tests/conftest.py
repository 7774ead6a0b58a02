"""Shared pytest options and fixtures.

`--seed N` replays one simulation seed exactly; `--seeds N` sets how many seeds the
random simulations run; `--rewrite` regenerates datadriven transcripts.

The single-member references the API, fuzz and load generator tests compare against
live here: `raftmon1` (one raftmon member) and `etcd1` (one real etcd 3.4 member).
SIGTERM (what `timeout` sends) unwinds like Ctrl-C, so fixtures stop what they started;
children the run did not get to stop die with it anyway (`lab.children`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

# Before anything imports grpc (it reads this once): grpcio's fork handlers can crash a
# child forked while another thread is inside a gRPC call (lab.children runs Python
# between fork and exec), about 1 spawn in 50 with a stream open; without them, none.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from tests.helpers import etcd_cluster, running_cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--seed", type=int, default=None, help="replay one simulation seed")
    parser.addoption("--seeds", type=int, default=None, help="number of simulation seeds")
    parser.addoption("--rewrite", action="store_true", help="rewrite datadriven expectations")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="module")
def raftmon1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One raftmon member (test timings), for one test module."""
    with running_cluster(tmp_path_factory.mktemp("raftmon1"), 1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One real etcd 3.4 member (test timings), for one test module: a module that compares
    etcd's state with raftmon's (the fuzz) must not see what another module wrote."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd1")) as cluster:
        yield cluster
