"""A defragment gives free pages back in short steps, each its own commit, so applies run
between them; a file made before that was possible is converted by one whole VACUUM."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log

MAX_STEPS = 1000  # bound on every loop of steps below


def fill_and_compact(store: KVStore, raft: Log, keys: int = 200) -> None:
    """Free pages: every key written, then deleted, then compacted away."""
    for i in range(keys):
        raft.apply(rq.PutRequest(b"k%03d" % i, b"x" * 2000))
    raft.apply(rq.DeleteRangeRequest(b"k", b"l"))
    raft.apply(rq.CompactionRequest(store.current_revision()))


def free_pages(db_path: str) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def test_a_new_store_gives_free_pages_back_in_steps_with_applies_between(
    store: KVStore, raft: Log, db_path: str
) -> None:
    assert store.defrag_in_steps
    fill_and_compact(store, raft)
    before = store.stats()
    assert before.db_in_use_size < before.db_total_size
    lefts: list[int | None] = []
    for i in range(MAX_STEPS):
        left = store.defrag_step(pages=8)
        lefts.append(left)
        raft.apply(rq.PutRequest(b"between/%d" % i, b"y"))  # the store is free between steps
        if left == 0:
            break
    assert len(lefts) > 2
    assert lefts[-1] == 0
    store.finish_defrag(0.0)
    after = store.stats()
    assert after.db_total_size < before.db_total_size
    assert free_pages(db_path) == 0
    # Every put made between the steps is there, applied and committed in order.
    got = store.range(rq.RangeRequest(b"between/", b"between0")).kvs
    assert len(got) == len(lefts)
    assert store.applied_index() == raft.index


def test_a_file_without_steps_is_converted_by_one_whole_vacuum(db_path: str) -> None:
    Path(db_path).parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:  # a file as an older raftmon left it: a table
        conn.execute("CREATE TABLE older (x)")  # exists, so auto_vacuum can no longer change
    store = KVStore.open(db_path)
    try:
        assert not store.defrag_in_steps
        raft = Log(store)
        fill_and_compact(store, raft)
        store.defragment()
        assert store.defrag_in_steps
        assert free_pages(db_path) == 0
        assert store.range(rq.RangeRequest(b"k", b"l")).kvs == []
    finally:
        store.close()
