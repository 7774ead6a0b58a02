"""SIGKILL during a stream of applies: the database is at some applied index, consistent
with it, and replaying the Raft log from there finishes the job exactly once."""

from __future__ import annotations

import textwrap
from pathlib import Path

from node.mvcc import codec
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import sigkill_when_ready

N = 50_000  # far more than the child gets through before the kill
BATCH = 7

CHILD = textwrap.dedent(
    """
    import sys
    from node.mvcc import codec
    from node.mvcc import requests as rq
    from node.mvcc.store import KVStore
    store = KVStore.open(sys.argv[1])
    n, batch = int(sys.argv[2]), int(sys.argv[3])
    def entry(i):
        return (i, codec.encode_request(i, rq.PutRequest(b"k%05d" % i, b"%d" % i)))
    for lo in range(1, n + 1, batch):
        store.apply_batch([entry(i) for i in range(lo, min(lo + batch, n + 1))])
        if lo == 20 * batch + 1:
            print("ready", flush=True)
    print("done", flush=True)
    """
)


def entries(lo: int, hi: int) -> list[tuple[int, bytes]]:
    return [
        (i, codec.encode_request(i, rq.PutRequest(b"k%05d" % i, b"%d" % i)))
        for i in range(lo, hi + 1)
    ]


def test_sigkill_mid_stream_then_replay_applies_each_entry_once(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    sigkill_when_ready(CHILD, db, str(N), str(BATCH))  # the child is ready after 20 batches
    store = KVStore.open(db)
    try:
        applied = store.applied_index()
        assert applied % BATCH == 0  # whole batches only
        assert 20 * BATCH <= applied < N
        # contents agree with the applied index: one key and one revision per entry
        assert store.current_revision() == applied + 1
        assert store.range(rq.RangeRequest(b"k", b"l", count_only=True)).count == applied
        # the Raft log replays from an older point; only entries after `applied` apply
        end = applied + 50
        results = store.apply_batch(entries(max(1, applied - 50), end))
        assert [r.index for r in results] == list(range(applied + 1, end + 1))
        assert store.current_revision() == end + 1
        last = store.range(rq.RangeRequest(b"k%05d" % end)).kvs[0]
        assert last == rq.KeyValue(b"k%05d" % end, end + 1, end + 1, 1, b"%d" % end)
    finally:
        store.close()
