"""The batched deletion (rows in table order) leaves exactly the rows the one-shot one leaves.

`compaction.Deletion` decides per row below the compact revision whether it is kept (its
key's latest at or before that revision) from the live index and the links of the rows
after it; `delete_all` deletes what the links of the rows at or before it condemn. The
two must agree on every history: puts, deletes, keys deleted and written again, before
and after the compact revision, and writes between the batches. Hypothesis draws the
histories; the batches run with small limits so that a history spans many of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from node.mvcc import requests as rq
from node.mvcc.hash import hash_kv_file
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log
from tests.mvcc.test_apply_total import SETTINGS

KEYS = st.sampled_from([b"a", b"b", b"c", b"d", b"e"])
OPS = st.one_of(
    st.builds(rq.PutRequest, KEYS, st.binary(max_size=4)),
    st.builds(rq.PutRequest, KEYS, st.binary(max_size=4)),
    st.builds(rq.DeleteRangeRequest, KEYS),
    st.builds(rq.DeleteRangeRequest, st.just(b"a"), st.just(b"z")),
)
HISTORIES = st.lists(OPS, min_size=1, max_size=40)


def _rows(store: KVStore) -> list[tuple[int, bytes, int]]:
    store.commit()
    return store._db().execute("SELECT id, key, version FROM kv ORDER BY id").fetchall()


def _replay(store: KVStore, ops: list[object]) -> Log:
    raft = Log(store)
    for op in ops:
        raft.batch(op)
    return raft


@SETTINGS
@given(
    HISTORIES,
    st.integers(min_value=0, max_value=40),
    HISTORIES,
    st.integers(min_value=1, max_value=7),
)
def test_batches_delete_what_the_whole_compaction_deletes(
    before: list[object], back: int, during: list[object], limit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        whole = KVStore.open(str(Path(tmp) / "whole.db"))
        whole.compact_in_background = False
        batched = KVStore.open(str(Path(tmp) / "batched.db"))
        batched.compact_in_background = True
        try:
            logs = [_replay(store, before) for store in (whole, batched)]
            rev = max(1, whole.current_revision() - back)
            compacting = rq.CompactionRequest(rev)
            for raft in logs:
                raft.batch(compacting)
            if not batched.compaction_pending():
                return  # refused (nothing to compact) on both sides
            # writes after the compaction, one between each pair of batches
            for op in during:
                batched.compact_step(limit=limit)
                for raft in logs:
                    raft.batch(op)
            for _ in range(1000):
                if batched.compact_step(limit=limit):
                    break
            assert not batched.compaction_pending()
            assert _rows(batched) == _rows(whole)
            assert hash_kv_file(batched.path, 0) == hash_kv_file(whole.path, 0)
        finally:
            whole.close()
            batched.close()


def test_a_batch_deletes_runs_of_old_rows_and_keeps_each_keys_latest(tmp_path: Path) -> None:
    """Keys written over and over: everything below the compact revision goes but each
    key's row at or before it, whether that row is still live or was replaced after."""
    store = KVStore.open(str(tmp_path / "db"))
    store.compact_in_background = True
    raft = Log(store)
    for r in range(20):
        raft.batch(*(rq.PutRequest(f"k{i}".encode(), str(r).encode()) for i in range(10)))
    compact_at = store.current_revision()
    raft.apply(rq.CompactionRequest(compact_at))
    raft.apply(rq.PutRequest(b"k0", b"after"))  # k0's row at the compact revision stays
    raft.apply(rq.DeleteRangeRequest(b"k1"))  # and k1's, which the tombstone links to
    for _ in range(100):
        if store.compact_step(limit=16):
            break
    rows = _rows(store)
    assert [(key, version) for _, key, version in rows] == [
        *((f"k{i}".encode(), 20) for i in range(10)),
        (b"k0", 21),
        (b"k1", 0),
    ]
    assert store.stats().compaction_keys_total == 190
    store.close()
