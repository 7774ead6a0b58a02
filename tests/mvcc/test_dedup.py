"""A request proposed twice (its first copy and a retry) is applied once, on every member.

node/mvcc/dedup.py: the apply records every entry's request id by index; a retry whose
id was applied after its `since` is skipped, and a first copy whose retry was applied is
skipped. The record is in the store's own transaction and file, so it survives a restart
and travels in a snapshot image: a member restored from one skips what the others skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.errors import ErrRetryUndecidable
from node.mvcc import codec, dbfile, dedup
from node.mvcc import requests as rq
from node.mvcc.store import ApplyResult, KVStore

ID = 0xABCD_0000_0000_0001  # above 2**63, as a member id's top bits can make it


def _put(key: bytes, value: bytes, request_id: int = ID) -> bytes:
    return codec.encode_request(request_id, rq.PutRequest(key, value))


def _state(kv: KVStore, key: bytes = b"k") -> tuple[int, int, int]:
    """(current revision, the key's version, the store's applied index)."""
    got = kv.get(key)
    return kv.current_revision(), (got.version if got else 0), kv.applied_index()


def _apply(kv: KVStore, *entries: tuple[int, bytes]) -> list[ApplyResult]:
    results = kv.apply_batch(list(entries))
    kv.commit()
    return results


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[KVStore]:
    store = KVStore.open(str(tmp_path / "db"))
    yield store
    store.close()


def test_a_retry_of_an_applied_request_is_skipped(kv: KVStore) -> None:
    first = _put(b"k", b"v")
    _apply(kv, (1, first))
    results = _apply(kv, (2, b""), (3, codec.encode_retry(first, since=0)))
    assert results == []  # nothing answered: the first copy's apply answered the client
    assert _state(kv) == (2, 1, 3)
    assert kv.duplicates_skipped == 1


def test_a_retry_whose_first_copy_was_lost_is_applied_and_the_late_first_copy_skipped(
    kv: KVStore,
) -> None:
    first = _put(b"k", b"v")
    (result,) = _apply(kv, (5, codec.encode_retry(first, since=4)))
    assert result.error is None
    assert result.request_id == ID
    assert result.response.revision == 2
    assert _apply(kv, (6, first)) == []  # committed after its retry: the duplicate
    assert _state(kv) == (2, 1, 6)
    assert kv.duplicates_skipped == 1


def test_a_copy_applied_before_since_does_not_count(kv: KVStore) -> None:
    """An id applied at or below `since` is not the retry's first copy (ids are unique,
    so this only happens to hand-made entries): the retry is applied."""
    _apply(kv, (1, _put(b"k", b"v")))
    (result,) = _apply(kv, (2, codec.encode_retry(_put(b"k", b"v"), since=1)))
    assert result.error is None
    assert _state(kv) == (3, 2, 2)


def test_both_copies_in_one_batch(kv: KVStore) -> None:
    first = _put(b"k", b"v")
    results = _apply(kv, (1, first), (2, codec.encode_retry(first, since=0)))
    assert [r.index for r in results] == [1]
    assert _state(kv) == (2, 1, 2)


def test_a_retry_older_than_the_window_is_refused(
    kv: KVStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dedup, "WINDOW", 10)
    first = _put(b"k", b"v")
    (result,) = _apply(kv, (11, codec.encode_retry(first, since=1)))
    assert isinstance(result.error, ErrRetryUndecidable)
    assert "request timed out" in str(result.error)
    assert _state(kv) == (1, 0, 11)  # applied nowhere
    (result,) = _apply(kv, (12, first))  # so its first copy still applies
    assert result.error is None
    assert _state(kv) == (2, 1, 12)


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    first, other = _put(b"k", b"v"), _put(b"j", b"w", request_id=ID + 1)
    kv = KVStore.open(path)
    _apply(kv, (1, first), (2, codec.encode_retry(other, since=1)))
    kv.close()
    kv = KVStore.open(path)
    try:
        assert _apply(kv, (3, codec.encode_retry(first, since=0)), (4, other)) == []
        assert _state(kv) == (3, 1, 4)
        assert _state(kv, b"j")[1] == 1
    finally:
        kv.close()


def test_an_open_batch_rolled_back_forgets_its_ids(tmp_path: Path) -> None:
    """A crash before the backend commit loses the ids with the entries: the replay
    applies the entries again, and a retry replayed after them is still skipped."""
    path = str(tmp_path / "db")
    first = _put(b"k", b"v")
    kv = KVStore.open(path, batch_interval=3600, batch_limit=1000)
    kv.apply_batch([(1, first)])
    kv._conn.execute("ROLLBACK")  # type: ignore[union-attr]  # what a kill -9 leaves
    kv._conn.close()  # type: ignore[union-attr]
    kv._conn = None
    kv = KVStore.open(path)
    try:
        assert _state(kv) == (1, 0, 0)
        assert len(_apply(kv, (1, first), (2, codec.encode_retry(first, since=0)))) == 1
        assert _state(kv) == (2, 1, 2)
    finally:
        kv.close()


def test_a_store_restored_from_an_image_skips_what_the_source_skips(
    kv: KVStore, tmp_path: Path
) -> None:
    first, late = _put(b"k", b"v"), _put(b"j", b"w", request_id=ID + 1)
    _apply(kv, (1, first), (2, codec.encode_retry(late, since=1)))
    image = kv.backup(str(tmp_path / "image"))
    follower = KVStore.open(str(tmp_path / "follower"))
    try:
        follower.restore_from(image.path)
        for store in (kv, follower):
            assert _apply(store, (3, codec.encode_retry(first, since=0)), (4, late)) == []
            assert _state(store) == (3, 1, 4)
    finally:
        follower.close()


def test_old_ids_are_pruned_and_decisions_stay_the_same(
    kv: KVStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dedup, "WINDOW", 20)
    monkeypatch.setattr(dedup, "PRUNE_STEP", 5)
    for index in range(1, 101):
        _apply(kv, (index, _put(b"n", b"x", request_id=ID + index)))
    rows = kv._conn.execute("SELECT min(idx), count(*) FROM request_ids").fetchone()  # type: ignore[union-attr]
    assert 75 <= rows[0]
    assert rows[1] <= 26
    dup = codec.encode_retry(_put(b"n", b"x", request_id=ID + 95), since=90)
    assert _apply(kv, (101, dup)) == []
    assert _state(kv, b"n")[1] == 100


def test_answers_ahead_leaves_retries_and_retried_first_copies_to_the_apply(
    kv: KVStore,
) -> None:
    first = _put(b"k", b"v")
    retry = codec.encode_retry(first, since=0)
    assert kv.answers_ahead([(1, retry)]) is None
    _apply(kv, (1, retry))
    assert kv.answers_ahead([(2, first)]) is None
    assert kv.answers_ahead([(2, _put(b"k", b"v", request_id=ID + 1))]) is not None


def test_a_new_cluster_from_a_snapshot_starts_with_no_ids(kv: KVStore, tmp_path: Path) -> None:
    _apply(kv, (1, _put(b"k", b"v")), (2, codec.encode_retry(_put(b"j", b"w", ID + 1), 1)))
    image = kv.backup(str(tmp_path / "image"))
    dbfile.adopt_for_new_cluster(image.path)
    restored = KVStore.open(image.path)
    try:
        counts = restored._conn.execute(  # type: ignore[union-attr]
            "SELECT (SELECT count(*) FROM request_ids), (SELECT count(*) FROM retried_ids)"
        ).fetchone()
        assert counts == (0, 0)
    finally:
        restored.close()


def test_garbage_behind_the_retry_format_byte_is_an_undecodable_entry(kv: KVStore) -> None:
    (result,) = _apply(kv, (1, bytes([codec.RETRY_FORMAT, 1, 2])))
    assert "undecodable" in str(result.error)
    assert _state(kv) == (1, 0, 1)
