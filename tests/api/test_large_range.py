"""Large ranges: read off the loop from a snapshot, encoded in slices, same answers.

A range that may be large (a key range without a small limit) is read in a worker
thread from a snapshot of the committed database, after the open batch is committed,
and its JSON is built a slice per loop turn. These tests hold it to the answers the
on-loop path gives: every write acknowledged before the read is in it (linearizable
and serializable), the header revision is the snapshot's, the bytes are the same.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from node.api import codec
from node.api.gateway import _encode_range
from node.fairness import TurnShare
from node.mvcc import requests as rq
from node.server.kv_service import _may_be_large
from tests.cluster.etcdjson import b64, call, put

pytestmark = pytest.mark.cluster

KEYS = 2500  # above the off-loop threshold (1000) and several encoding slices (500)


def fill(url: str, prefix: str, n: int) -> int:
    rev = 0
    for i0 in range(0, n, 100):
        ops = [
            {"request_put": {"key": b64(f"{prefix}{i:05d}"), "value": b64("v" * 200)}}
            for i in range(i0, min(n, i0 + 100))
        ]
        rev = int(call(url, "/v3/kv/txn", {"success": ops})["header"]["revision"])
    return rev


def test_a_large_range_sees_every_acknowledged_write(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    fill(url, "lr/", KEYS)
    for serializable in (False, True):
        for i in range(5):  # each write is read back at once: the open batch must be seen
            rev = int(put(url, f"lr/z{serializable}{i}", "last")["header"]["revision"])
            out = call(
                url,
                "/v3/kv/range",
                {"key": b64("lr/"), "range_end": b64("lr0"), "serializable": serializable},
            )
            assert int(out["header"]["revision"]) == rev
            keys = [kv["key"] for kv in out["kvs"]]
            assert b64(f"lr/z{serializable}{i}") in keys
            assert int(out["count"]) == len(keys)
            assert keys == sorted(keys, key=base64.b64decode)


def test_a_large_range_with_a_limit_answers_more_and_the_full_count(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    fill(url, "ll/", KEYS)
    full = call(url, "/v3/kv/range", {"key": b64("ll/"), "range_end": b64("ll0")})
    limited = call(url, "/v3/kv/range", {"key": b64("ll/"), "range_end": b64("ll0"), "limit": 1500})
    small = call(url, "/v3/kv/range", {"key": b64("ll/"), "range_end": b64("ll0"), "limit": 900})
    assert len(full["kvs"]) == KEYS
    assert "more" not in full
    assert limited["more"] is True
    assert limited["count"] == small["count"] == str(KEYS)
    assert limited["kvs"] == full["kvs"][:1500]
    assert small["kvs"] == full["kvs"][:900]  # on-loop path, same rows


def test_a_range_at_a_past_revision_reads_that_revision_off_the_loop(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    rev = fill(url, "lp/", KEYS)
    put(url, "lp/00000", "changed")
    old = call(url, "/v3/kv/range", {"key": b64("lp/"), "range_end": b64("lp0"), "revision": rev})
    assert old["kvs"][0]["value"] == b64("v" * 200)
    assert len(old["kvs"]) == KEYS


async def test_the_sliced_encoding_is_byte_for_byte_the_plain_one() -> None:
    kvs = [
        rq.KeyValue(f"k{i:05d}".encode(), 2, 3 + i, 1, b"x" * (i % 7), i % 3) for i in range(1234)
    ]
    header = {"cluster_id": "1", "member_id": "2", "revision": "9", "raft_term": "3"}
    for more, count in ((False, 1234), (True, 5000), (False, 0)):
        resp = rq.RangeResponse(revision=9, kvs=list(kvs), more=more, count=count)
        plain = codec.dumps(codec.range_json(rq.RangeResponse(9, list(kvs), more, count), header))
        assert await _encode_range(TurnShare(), resp, header) == plain
    await asyncio.sleep(0)


def test_every_read_at_a_past_revision_goes_off_the_loop() -> None:
    """Schema 2 has no index by key: a read at a past revision undoes every row written
    since, so even one key (or a count) at a past revision is read in the worker thread."""
    assert _may_be_large(rq.RangeRequest(key=b"k", revision=5))
    assert _may_be_large(rq.RangeRequest(key=b"k", range_end=b"l", count_only=True, revision=5))
    assert _may_be_large(rq.RangeRequest(key=b"k", range_end=b"l", limit=10, revision=5))
    assert not _may_be_large(rq.RangeRequest(key=b"k"))
    assert not _may_be_large(rq.RangeRequest(key=b"k", range_end=b"l", limit=10))


def test_one_key_at_a_past_revision_answers_its_version_then(raftmon1: Any) -> None:
    url = raftmon1.endpoints[0]
    first = int(put(url, "lk/a", "one")["header"]["revision"])
    fill(url, "lk/fill/", 300)
    put(url, "lk/a", "two")
    call(url, "/v3/kv/deleterange", {"key": b64("lk/a")})
    then = call(url, "/v3/kv/range", {"key": b64("lk/a"), "revision": first})
    assert [kv["value"] for kv in then["kvs"]] == [b64("one")]
    counted = call(url, "/v3/kv/range", {"key": b64("lk/a"), "revision": first, "count_only": True})
    assert counted["count"] == "1"
    assert "kvs" not in call(url, "/v3/kv/range", {"key": b64("lk/a")})
