"""A put forwarded to a leader that dies before committing it succeeds, exactly once.

Issue 17's faulted run: the clients of the followers lost every put in flight when the
leader was killed, each after the request timeout ("request timed out, possibly due to
previous leader failure"); etcd loses them the same way. Once a new leader is known, a
raftmon member sends again what its clients still wait for, and the apply skips
whichever copy comes second (node/mvcc/dedup.py). Two real-process cases, the two ways a
kill -9 of the leader can leave a forwarded put:

* lost: the leader appended it but replicated it to no one (its sends are dropped), so
  only the retry can commit it;
* kept: the leader replicated it to one follower but never learned so (that follower's
  sends to it are dropped), so the new leader commits the first copy, and the retry
  reaches every member's apply as a duplicate and is skipped everywhere.

Outcomes only: the client's deadline (30 s) is far beyond the members' request timeout,
so a put that was lost would fail with etcd's timeout instead of succeeding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster
from lab.procs import http_json
from tests.cluster.etcdjson import get, put, wait_until
from tests.cluster.test_peer_impostors import metric
from tests.helpers import running_cluster

pytestmark = pytest.mark.cluster

CLIENT_DEADLINE = 30.0
SENT = 0.5  # seconds for the put to reach its member and be forwarded (sequencing only)
SENT_AGAIN = "raftmon_server_proposals_sent_again_total"
SKIPPED = "raftmon_server_apply_duplicates_skipped_total"


@pytest.fixture
def raftmon3(tmp_path: Path) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path / "c", 3) as cluster:
        yield cluster


def _drop(cluster: LocalCluster, sender: str, *receivers: str) -> None:
    """Everything `sender` sends to `receivers` is dropped from now on."""
    spec = {"peers": {name: {"drop": True} for name in receivers}}
    out = http_json(cluster.member(sender).metrics_url + "/raftmon/faults", spec)
    assert "error" not in out, out


def _put_in_thread(url: str, key: str) -> Callable[[], dict[str, Any]]:
    """Start a put; the returned call joins it and gives its answer."""
    answer: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: answer.update(put(url, key, "v", timeout=CLIENT_DEADLINE)), daemon=True
    )
    thread.start()

    def join() -> dict[str, Any]:
        thread.join(timeout=2 * CLIENT_DEADLINE)
        return answer

    return join


def _revision_after_a_put(cluster: LocalCluster, name: str) -> int:
    """A first put through `name` (its link to the leader is up): the revision after it."""
    return int(put(cluster.member(name).client_url, "warm", "up")["header"]["revision"])


def _written_once(cluster: LocalCluster, key: str, revision_before: int) -> None:
    """Every living member holds `key` at version 1, one revision after `revision_before`."""
    for m in cluster.members:
        if not m.alive:
            continue
        wait_until(
            lambda m=m: (
                int(get(m.client_url, key, serializable=True)["header"]["revision"])
                >= revision_before + 1
            ),
            timeout=CLIENT_DEADLINE,
            what=f"{m.name} applied the put",
        )
        resp = get(m.client_url, key, serializable=True)
        (kv,) = resp["kvs"]
        assert (kv["version"], kv["mod_revision"]) == ("1", str(revision_before + 1)), m.name
        assert resp["header"]["revision"] == str(revision_before + 1), m.name


def _leader_and_followers(cluster: LocalCluster) -> tuple[str, str, str]:
    leader = cluster.wait_leader()
    first, second = (m.name for m in cluster.members if m.name != leader)
    return leader, first, second


def _put_while_the_leader_dies(
    cluster: LocalCluster, leader: str, sender: str, key: str, drops: dict[str, tuple[str, ...]]
) -> None:
    """A put through `sender`, forwarded to `leader` under the `drops` (sender -> receivers
    whose traffic from it is dropped), then the leader killed: the put succeeds once."""
    revision_before = _revision_after_a_put(cluster, sender)
    for dropper, receivers in drops.items():
        _drop(cluster, dropper, *receivers)
    answer = _put_in_thread(cluster.member(sender).client_url, key)
    time.sleep(SENT)
    cluster.kill(leader)
    resp = answer()
    assert "error" not in resp, resp
    assert resp["header"]["revision"] == str(revision_before + 1)
    _written_once(cluster, key, revision_before)
    assert metric(cluster.member(sender), SENT_AGAIN) >= 1


def test_a_put_the_dead_leader_never_replicated_is_sent_again_and_applied(
    raftmon3: LocalCluster,
) -> None:
    leader, follower, other = _leader_and_followers(raftmon3)
    # the leader's appends reach no one
    _put_while_the_leader_dies(raftmon3, leader, follower, "lost/put", {leader: (follower, other)})


def test_a_put_the_new_leader_already_holds_is_applied_once_and_its_retry_skipped(
    raftmon3: LocalCluster,
) -> None:
    leader, holder, sender = _leader_and_followers(raftmon3)
    # the leader's appends reach `holder` only, and `holder`'s acks never come back
    drops: dict[str, tuple[str, ...]] = {leader: (sender,), holder: (leader,)}
    _put_while_the_leader_dies(raftmon3, leader, sender, "kept/put", drops)
    for name in (holder, sender):
        wait_until(
            lambda name=name: metric(raftmon3.member(name), SKIPPED) >= 1,
            timeout=CLIENT_DEADLINE,
            what=f"{name} skipped the second copy",
        )
