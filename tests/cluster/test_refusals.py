"""Requests refused because of the cluster's state, not their bytes: etcd's error, nothing changed.

No leader, a compacted revision and a full backend quota each answer etcd's exact error
(wording, gRPC code, HTTP status) and leave the revision and the data as they were;
once the cause is gone the same request succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import (
    b64,
    call,
    post_status,
    revision,
    unb64,
    value_of,
    wait_until,
)

pytestmark = pytest.mark.cluster


def no_leader(url: str) -> bool:
    status = call(url, "/v3/maintenance/status", {}, timeout=2)
    leader: str = status.get("leader", "0")  # a uint64 as a JSON string
    return leader == "0"


def test_a_write_without_a_leader_is_held_then_times_out_and_never_lands(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    """As etcd 3.4: no immediate "no leader"; the proposal waits for a leader until its
    request timeout (5 s + two election timeouts) and fails "request timed out"."""
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    survivor = next(m for m in cluster.members if m.name != leader)
    url = survivor.client_url
    before = revision(url)
    for m in cluster.members:
        if m.name != survivor.name:
            cluster.kill(m.name)
    wait_until(lambda: no_leader(url), timeout=15, what="the survivor has no leader")
    status, body = post_status(
        url + "/v3/kv/put", {"key": b64("refused/no-leader"), "value": b64("x")}
    )
    assert status == 503, body
    assert body == {
        "error": "etcdserver: request timed out",
        "message": "etcdserver: request timed out",
        "code": 14,
    }
    for m in cluster.members:
        if m.name != survivor.name:
            cluster.restart(m.name)
    cluster.wait_leader(timeout=30)
    assert value_of(url, "refused/no-leader") is None
    assert revision(url) == before


def test_a_write_sent_without_quorum_is_answered_once_a_leader_is_elected(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    """The write that arrives while no leader is known succeeds when quorum returns in time."""
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    survivor = next(m for m in cluster.members if m.name != leader)
    url = survivor.client_url
    victims = [m.name for m in cluster.members if m.name != survivor.name]
    for name in victims:
        cluster.kill(name)
    wait_until(lambda: no_leader(url), timeout=15, what="the survivor has no leader")
    answer: dict[str, object] = {}

    def write() -> None:
        put = {"key": b64("held/until-elected"), "value": b64("y")}
        answer["status"], answer["body"] = post_status(url + "/v3/kv/put", put, timeout=30)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.5)  # the put is held by now (no leader); quorum comes back after it
    cluster.restart(victims[0], wait=False)
    writer.join(timeout=40)
    assert not writer.is_alive()
    assert answer["status"] == 200, answer
    assert value_of(url, "held/until-elected") == "y"


def test_a_linearizable_read_without_a_leader_is_held_then_times_out(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    """As etcd 3.4: no "no leader" after a second; the read waits for a leader until its
    request timeout and fails "request timed out"; a serializable read is served."""
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    survivor = next(m for m in cluster.members if m.name != leader)
    url = survivor.client_url
    call(url, "/v3/kv/put", {"key": b64("read/held"), "value": b64("v")})
    wait_until(lambda: value_of(url, "read/held") == "v", what="the survivor applied the put")
    for m in cluster.members:
        if m.name != survivor.name:
            cluster.kill(m.name)
    wait_until(lambda: no_leader(url), timeout=15, what="the survivor has no leader")
    status, body = post_status(url + "/v3/kv/range", {"key": b64("read/held")}, timeout=30)
    assert status == 503, body
    assert body == {
        "error": "etcdserver: request timed out",
        "message": "etcdserver: request timed out",
        "code": 14,
    }
    assert value_of(url, "read/held", serializable=True) == "v"


def test_a_linearizable_read_sent_without_quorum_is_answered_once_a_leader_is_elected(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    """The read that arrives while no leader is known is served when quorum returns in time."""
    cluster = fresh_cluster(3)
    leader = cluster.wait_leader()
    survivor = next(m for m in cluster.members if m.name != leader)
    url = survivor.client_url
    call(url, "/v3/kv/put", {"key": b64("read/until-elected"), "value": b64("w")})
    wait_until(lambda: value_of(url, "read/until-elected") == "w", what="the put applied")
    victims = [m.name for m in cluster.members if m.name != survivor.name]
    for name in victims:
        cluster.kill(name)
    wait_until(lambda: no_leader(url), timeout=15, what="the survivor has no leader")
    answer: dict[str, object] = {}

    def read() -> None:
        get = {"key": b64("read/until-elected")}
        answer["status"], answer["body"] = post_status(url + "/v3/kv/range", get, timeout=30)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.5)  # past the old 1 s "no leader"; quorum comes back after it
    cluster.restart(victims[0], wait=False)
    reader.join(timeout=40)
    assert not reader.is_alive()
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert isinstance(body, dict)
    assert [unb64(kv["value"]) for kv in body["kvs"]] == ["w"]


def test_a_compacted_revision_is_refused_and_the_newer_ones_still_read(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(1)
    url = cluster.members[0].client_url
    revs = [
        int(call(url, "/v3/kv/put", {"key": b64("c"), "value": b64(v)})["header"]["revision"])
        for v in ("v1", "v2", "v3")
    ]
    call(url, "/v3/kv/compaction", {"revision": str(revs[1])})
    status, body = post_status(url + "/v3/kv/range", {"key": b64("c"), "revision": str(revs[0])})
    assert status == 400, body
    message = "etcdserver: mvcc: required revision has been compacted"
    assert body == {"error": message, "message": message, "code": 11}
    assert revision(url) == revs[2]
    assert value_of(url, "c", revision=str(revs[1])) == "v2"  # the compaction point stays
    assert value_of(url, "c") == "v3"
    # compacting again at the same point is refused the same way, and changes nothing
    status, body = post_status(url + "/v3/kv/compaction", {"revision": str(revs[1])})
    assert (status, body["code"], body["error"]) == (400, 11, message)


def test_a_full_quota_refuses_writes_but_serves_reads_and_deletes(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    quota = 2 * 1024 * 1024
    cluster = fresh_cluster(1, [f"--quota-backend-bytes={quota}"])
    url = cluster.members[0].client_url
    big = b64("x" * 64 * 1024)
    refused: tuple[int, dict[str, Any]] | None = None
    for i in range(200):  # bounded: 2 MiB of 64 KiB values is ~30 puts
        status, body = post_status(url + "/v3/kv/put", {"key": b64(f"fill/{i}"), "value": big})
        if status != 200:
            refused = (status, body)
            break
    assert refused is not None, "the quota was never reached"
    message = "etcdserver: mvcc: database space exceeded"
    assert refused == (429, {"error": message, "message": message, "code": 8})

    # The refusal proposes the NOSPACE alarm (asynchronously, as etcd does): wait for it.
    def alarms() -> list[str]:
        out = call(url, "/v3/maintenance/alarm", {"action": "GET", "memberID": "0", "alarm": 0})
        return [a["alarm"] for a in out.get("alarms", [])]

    assert wait_until(alarms, timeout=10, what="the NOSPACE alarm is raised") == ["NOSPACE"]
    # the alarm is armed: even a tiny write is refused, and changes nothing
    before = revision(url)
    status, body = post_status(url + "/v3/kv/put", {"key": b64("tiny"), "value": b64("1")})
    assert (status, body["code"], body["error"]) == (429, 8, message)
    assert revision(url) == before
    assert value_of(url, "tiny") is None
    # reads and deletes keep working
    assert value_of(url, "fill/0") == "x" * 64 * 1024
    deleted = call(url, "/v3/kv/deleterange", {"key": b64("fill/"), "range_end": b64("fill0")})
    assert int(deleted["deleted"]) >= 1
