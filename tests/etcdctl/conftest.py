"""A 3-member raftmon cluster and a 3-member etcd 3.4 cluster, each with Debian's etcdctl.

Both clusters run etcd's default timings (100 ms heartbeat, 1 s election timeout), not
the suite's fast ones: an election nobody asked for would move one cluster's leader
and fail a comparison for a reason that is not a difference. Under CI=true a missing
etcd or etcdctl fails the tests (`require_tool`), it never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.procs import wait_until
from tests.etcdctl.ctl import Etcdctl, Ran
from tests.helpers import require_tool


@dataclass
class Pair:
    """The same etcdctl command on raftmon and on etcd."""

    raftmon: Etcdctl
    etcd: Etcdctl

    def both(
        self, *args: str, at: int | None = None, stdin: str | None = None, rows: bool = False
    ) -> tuple[Ran, Ran]:
        """(raftmon's run, etcd's run), masked; `at` one member, `rows` sorted lines.

        Both at once: the clusters are independent, and a command that waits out its
        --command-timeout then costs the suite one timeout instead of two.
        """

        def run(ctl: Etcdctl) -> Ran:
            ran = ctl(*args, stdin=stdin) if at is None else ctl.at(at, *args, stdin=stdin)
            return ran.rows() if rows else ran

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="etcdctl") as pool:
            ours, theirs = pool.map(run, (self.raftmon, self.etcd))
        return ours, theirs

    def same(
        self, *args: str, at: int | None = None, stdin: str | None = None, rows: bool = False
    ) -> Ran:
        """Run on both; fail unless the masked runs are equal; raftmon's run."""
        ours, theirs = self.both(*args, at=at, stdin=stdin, rows=rows)
        assert ours == theirs, (
            f"etcdctl {' '.join(args)}: raftmon != etcd\n"
            f"--- raftmon (rc {ours.rc})\n{ours.out}{ours.err}--- etcd (rc {theirs.rc})\n"
            f"{theirs.out}{theirs.err}"
        )
        return ours

    def ctls(self) -> tuple[Etcdctl, Etcdctl]:
        return self.raftmon, self.etcd


def lead_from_first_member(ctl: Etcdctl) -> None:
    """Move leadership to the first member (`etcdctl move-leader`), so "IS LEADER" and
    follower reads name the same member on both clusters."""
    first = ctl.status(0)
    if first["leader"] == first["header"]["member_id"]:
        return
    leader = next(
        i
        for i in range(len(ctl.members))
        if ctl.status(i)["header"]["member_id"] == first["leader"]
    )
    done = ctl.raw(
        "move-leader",
        f"{first['header']['member_id']:x}",
        endpoints=[ctl.members[leader].client_url],
    )
    assert done.returncode == 0, done.stderr
    wait_until(
        "the first member leads",
        lambda: all(ctl.status(i)["leader"] == first["header"]["member_id"] for i in range(3)),
        timeout=30,
    )


@pytest.fixture(scope="module")
def raftmon3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-member raftmon cluster with etcd's default timings, for one module."""
    cluster = LocalCluster(tmp_path_factory.mktemp("raftmon3"), 3)
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs_tail())
        raise
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Both clusters, fresh for the module, led by their first member."""
    binary = require_tool("etcdctl")
    etcd_binary = require_tool("etcd")
    base = tmp_path_factory.mktemp("etcdctl")
    raftmon = LocalCluster(base / "raftmon", 3)
    etcd = EtcdCluster(etcd_binary, base / "etcd", size=3)
    try:
        raftmon.start()
        etcd.start()
        ctls = Pair(Etcdctl(binary, raftmon), Etcdctl(binary, etcd))
        for ctl in ctls.ctls():
            lead_from_first_member(ctl)
            ctl.learn_members()
        yield ctls
    except BaseException:
        print(raftmon.logs_tail(), etcd.logs_tail())
        raise
    finally:
        raftmon.stop()
        etcd.stop()
