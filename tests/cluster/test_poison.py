"""No ordinary client request may kill the cluster (issue 18, first section).

Before this was fixed, each request below was committed, then killed every member
that applied it, again on every restart (the replay applies it again), until no
member was left. etcd 3.4.23 itself answers the limit cases 200 and panics on the
bad sort_target (3.5 refuses it as "etcdserver: invalid sort option", as we do).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import b64, call, post_status, revision, wait_until

pytestmark = pytest.mark.cluster

MAX_I64 = str(2**63 - 1)
LIMIT_TXN = {
    "success": [
        {"request_put": {"key": b64("poison"), "value": b64("x")}},
        {"request_range": {"key": b64("foo"), "limit": MAX_I64}},
    ]
}
NESTED_TXN = {
    "success": [
        {"request_put": {"key": b64("poison-nested"), "value": b64("x")}},
        {"request_txn": {"success": [{"request_range": {"key": b64("foo"), "limit": MAX_I64}}]}},
    ]
}
BAD_SORT_TXN = {
    "success": [
        {"request_put": {"key": b64("poison-sort"), "value": b64("x")}},
        {"request_range": {"key": b64("a"), "range_end": b64("z"), "sort_target": 99}},
    ]
}
ALL_KEYS = {"key": "AA==", "range_end": "AA=="}


def _contents(url: str) -> tuple[int, list[tuple[str, str]]]:
    got = call(url, "/v3/kv/range", {**ALL_KEYS, "serializable": True})
    return int(got["header"]["revision"]), [(kv["key"], kv["mod_revision"]) for kv in got["kvs"]]


@pytest.mark.parametrize("size", [1, 3])
def test_the_poison_txns_are_answered_and_every_member_survives_them_and_their_replay(
    fresh_cluster: Callable[..., LocalCluster], size: int
) -> None:
    cluster = fresh_cluster(size)
    url = cluster.members[0].client_url
    status, got = post_status(url + "/v3/kv/txn", LIMIT_TXN)
    assert status == 200, got
    assert got["succeeded"] is True
    status, got = post_status(url + "/v3/kv/txn", NESTED_TXN)
    assert status == 200, got
    before = revision(url)
    status, got = post_status(url + "/v3/kv/txn", BAD_SORT_TXN)
    assert (status, got["code"], got["error"]) == (400, 3, "etcdserver: invalid sort option")
    status, got = post_status(url + "/v3/kv/range", {"key": b64("a"), "sort_target": 99})
    assert (status, got["error"]) == (400, "etcdserver: invalid sort option")
    assert revision(url) == before  # the refused txn wrote nothing
    assert all(m.alive for m in cluster.members)

    # kill -9 of every member: each replays the committed poison entries and lives
    for m in cluster.members:
        cluster.kill(m.name)
    for m in cluster.members:
        cluster.restart(m.name, wait=False)
    cluster.wait_healthy()
    call(url, "/v3/kv/put", {"key": b64("after"), "value": b64("ok")})
    expected = wait_until(
        lambda: (
            len({json.dumps(_contents(m.client_url)) for m in cluster.members}) == 1
            and _contents(url)
        ),
        what="every member at the same revision with the same keys",
    )
    keys = {k for k, _ in expected[1]}
    assert {b64("poison"), b64("poison-nested"), b64("after")} <= keys
    assert b64("poison-sort") not in keys
    assert all(m.alive for m in cluster.members)


@pytest.mark.parametrize(
    "delay",
    [1e308, -1, math.nan, "0.5", True, None],
    ids=["1e308", "-1", "nan", "str", "bool", "null"],
)
def test_lab_delays_outside_0_to_60_seconds_are_refused_and_the_member_keeps_writing(
    cluster3: LocalCluster, delay: object
) -> None:
    m = cluster3.members[0]
    body = json.dumps({"wal_fsync_delay_seconds": delay}).encode()  # NaN as JSON's NaN
    status, got = post_status(m.metrics_url + "/raftmon/faults", body)
    assert status == 400, got
    assert "wal_fsync_seconds" in got["error"]
    peers = {"peers": {cluster3.members[1].name: {"delay_seconds": delay}}}
    status, got = post_status(m.metrics_url + "/raftmon/faults", peers)
    assert status == 400, got
    call(m.client_url, "/v3/kv/put", {"key": b64("knob"), "value": b64("ok")})
    assert m.alive
