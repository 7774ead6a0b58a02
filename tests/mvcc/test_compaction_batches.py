"""Compaction in two halves: the apply records it, bounded batches delete the rows later."""

from __future__ import annotations

from pathlib import Path

import pytest

from node import errors as E
from node.mvcc import requests as rq
from node.mvcc.hash import hash_file, hash_kv_file
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log


def _rows(store: KVStore) -> int:
    store.commit()
    return int(store._db().execute("SELECT COUNT(*) FROM kv").fetchone()[0])


def _history(store: KVStore, keys: int, rounds: int) -> Log:
    """`rounds` puts of each of `keys` keys, plus one key deleted before the end."""
    raft = Log(store)
    for r in range(rounds):
        raft.batch(*(rq.PutRequest(f"k{i:04d}".encode(), f"v{r}".encode()) for i in range(keys)))
    raft.apply(rq.PutRequest(b"gone", b"x"))
    raft.apply(rq.DeleteRangeRequest(b"gone"))
    raft.apply(rq.PutRequest(b"k0000", b"last"))
    return raft


def _open(path: Path, *, background: bool) -> KVStore:
    store = KVStore.open(str(path))
    store.compact_in_background = background
    return store


def test_apply_records_the_compaction_and_batches_delete_the_rows_later(tmp_path: Path) -> None:
    store = _open(tmp_path / "db", background=True)
    raft = _history(store, keys=50, rounds=10)
    before = _rows(store)
    compact_at = store.current_revision() - 1  # at the delete of "gone"
    raft.apply(rq.CompactionRequest(compact_at))
    # Recorded at once: reads below it answer ErrCompacted, nothing deleted yet.
    assert store.compact_revision() == compact_at
    assert store.compaction_pending()
    with pytest.raises(E.ErrCompacted):
        store.range(rq.RangeRequest(b"k0001", revision=compact_at - 1))
    assert _rows(store) == before
    # Reads at or above the compact revision answer as after a whole compaction.
    at_compact = store.range(rq.RangeRequest(b"k", b"l", revision=compact_at))
    steps = 0
    while not store.compact_step(limit=60):
        steps += 1
        assert steps < 1000
        assert store.range(rq.RangeRequest(b"k", b"l", revision=compact_at)) == at_compact
    assert steps >= 500 // 60  # 500+ rows below the compact revision, 60 per batch
    assert not store.compaction_pending()
    # each key keeps its latest row at the compact revision, the tombstone AT it stays
    assert _rows(store) == 50 + 1 + 1  # + k0000's put after the compaction
    assert store.stats().compaction_keys_total == before - 52
    store.close()


def test_a_restarted_member_resumes_a_half_done_compaction(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = _open(path, background=True)
    raft = _history(store, keys=40, rounds=5)
    raft.apply(rq.CompactionRequest(store.current_revision()))
    assert not store.compact_step(limit=30)
    store.close()
    reopened = _open(path, background=True)
    try:
        assert reopened.compaction_pending()
        for _ in range(100):
            if reopened.compact_step(limit=30):
                break
        assert not reopened.compaction_pending()
        assert _rows(reopened) == 40
    finally:
        reopened.close()


def test_hashes_agree_between_members_at_different_points_of_the_deletion(
    tmp_path: Path,
) -> None:
    """HashKV and Hash leave out condemned rows, deleted or not (corruption checks agree)."""
    whole = _open(tmp_path / "a" / "db", background=False)
    batched = _open(tmp_path / "b" / "db", background=True)
    for store in (whole, batched):
        raft = _history(store, keys=30, rounds=4)
        raft.apply(rq.CompactionRequest(store.current_revision() - 1))
    assert batched.compaction_pending()
    assert not whole.compaction_pending()

    def hashes(store: KVStore) -> tuple[rq.HashKVResponse, rq.HashKVResponse, rq.HashResponse]:
        store.commit()
        return (
            hash_kv_file(store.path, 0),
            hash_kv_file(store.path, store.compact_revision() + 1),
            hash_file(store.path),
        )

    expected = hashes(whole)
    assert hashes(batched) == expected
    assert not batched.compact_step(limit=25)
    assert hashes(batched) == expected
    while not batched.compact_step(limit=25):
        pass
    assert hashes(batched) == expected
    whole.close()
    batched.close()


def test_hash_kv_agrees_mid_deletion_when_no_key_is_live(tmp_path: Path) -> None:
    """etcd's HashKV filters nothing when no key is live; condemned rows still never count."""
    whole = _open(tmp_path / "a" / "db", background=False)
    batched = _open(tmp_path / "b" / "db", background=True)
    for store in (whole, batched):
        raft = Log(store)
        for r in range(5):
            raft.apply(rq.PutRequest(b"k", str(r).encode()))
        raft.apply(rq.DeleteRangeRequest(b"k"))
        raft.apply(rq.CompactionRequest(store.current_revision() - 1))
        store.commit()
    assert hash_kv_file(batched.path, 0) == hash_kv_file(whole.path, 0)
    whole.close()
    batched.close()


def test_a_newer_compaction_during_the_deletion_restarts_it_at_the_newer_revision(
    tmp_path: Path,
) -> None:
    store = _open(tmp_path / "db", background=True)
    raft = _history(store, keys=20, rounds=6)
    raft.apply(rq.CompactionRequest(store.current_revision() - 40))
    assert not store.compact_step(limit=10)
    raft.apply(rq.CompactionRequest(store.current_revision()))
    for _ in range(200):
        if store.compact_step(limit=10):
            break
    assert not store.compaction_pending()
    assert _rows(store) == 20
    store.close()


def test_a_batch_skips_its_turn_while_a_snapshot_checkpoint_blocks_writers(
    tmp_path: Path,
) -> None:
    """A FULL checkpoint blocks new writers; a batch waiting on it could time out and fail."""
    store = _open(tmp_path / "db", background=True)
    raft = _history(store, keys=20, rounds=3)
    raft.apply(rq.CompactionRequest(store.current_revision()))
    before = _rows(store)
    with store._checkpoint_gate:  # as checkpoint_durable holds it
        assert not store.compact_step(limit=10)
        assert _rows(store) == before
    for _ in range(100):
        if store.compact_step(limit=10):
            break
    assert _rows(store) == 20
    store.close()
