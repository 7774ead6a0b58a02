"""HashKV and Hash (node/mvcc/hash.py): equal for equal content, etcd's bytes and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.errors import ErrCompacted, ErrFutureRev
from node.mvcc import requests as rq
from node.mvcc.hash import hash_file, hash_kv_conn, hash_kv_file
from node.mvcc.store import KVStore
from tests.mvcc.conftest import Log


def crc32c(data: bytes, value: int = 0) -> int:
    """CRC-32C (Castagnoli), etcd's checksum, bit by bit: slow, for small test stores."""
    crc = value ^ 0xFFFF_FFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F6_3B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF_FFFF


def _put(key: str, value: str, lease: int = 0) -> rq.PutRequest:
    return rq.PutRequest(key=key.encode(), value=value.encode(), lease=lease)


def _del(key: str, range_end: str = "") -> rq.DeleteRangeRequest:
    return rq.DeleteRangeRequest(key=key.encode(), range_end=range_end.encode())


WRITES: list[object] = [
    _put("a", "1"),
    _put("b", "2"),
    rq.LeaseGrantRequest(ttl=60, id=7),
    _put("a", "3"),
    _put("d", "x", lease=7),
    _del("b"),
    rq.TxnRequest(success=[_put("e", "1"), _put("f", "2")]),
    _put("c", ""),
    rq.LeaseRevokeRequest(id=7),
    _put("a", "4"),
]


def _store(path: Path, batches: list[list[object]]) -> KVStore:
    store = KVStore.open(str(path))
    log = Log(store)
    for batch in batches:
        for result in log.batch(*batch):
            assert result.error is None, result.error
    store.commit()
    return store


@pytest.fixture
def two_stores(tmp_path: Path) -> tuple[KVStore, KVStore]:
    """The same writes, one per batch in one store, all in one batch in the other."""
    one = _store(tmp_path / "one" / "db", [[w] for w in WRITES])
    other = _store(tmp_path / "other" / "db", [WRITES])
    return one, other


def test_hashes_are_equal_for_the_same_writes_in_different_batches(
    two_stores: tuple[KVStore, KVStore],
) -> None:
    one, other = two_stores
    try:
        assert one.current_revision() == other.current_revision() == 10
        for rev in (0, 2, 5, 9, 10):
            assert hash_kv_file(one.path, rev) == hash_kv_file(other.path, rev)
        assert hash_file(one.path) == hash_file(other.path)
        # both compacted at 6: equal again, and HashKV answers the new compact revision
        for store in (one, other):
            Log(store).apply(rq.CompactionRequest(revision=6))
            store.commit()
        a, b = hash_kv_file(one.path, 0), hash_kv_file(other.path, 0)
        assert a == b
        assert (a.revision, a.compact_revision) == (10, 6)
        assert hash_file(one.path) == hash_file(other.path)
    finally:
        one.close()
        other.close()


def test_hashes_differ_when_one_value_differs(tmp_path: Path) -> None:
    one = _store(tmp_path / "one" / "db", [WRITES])
    changed = [_put("a", "5") if w == _put("a", "3") else w for w in WRITES]
    other = _store(tmp_path / "other" / "db", [changed])
    try:
        assert hash_kv_file(one.path, 3) == hash_kv_file(other.path, 3)  # before the change
        assert hash_kv_file(one.path, 0).hash != hash_kv_file(other.path, 0).hash
        assert hash_file(one.path).hash != hash_file(other.path).hash
    finally:
        one.close()
        other.close()


def test_hash_kv_refuses_compacted_and_future_revisions(tmp_path: Path) -> None:
    store = _store(tmp_path / "db", [WRITES])
    try:
        assert hash_kv_file(store.path, 0).compact_revision == -1  # etcd: never compacted
        with pytest.raises(ErrFutureRev):
            hash_kv_file(store.path, 11)
        Log(store).apply(rq.CompactionRequest(revision=6))
        store.commit()
        for rev in (1, 5, 6):  # at the compact revision too, unlike a range
            with pytest.raises(ErrCompacted):
                hash_kv_file(store.path, rev)
        assert hash_kv_file(store.path, 7).revision == 10  # the header: the current revision
    finally:
        store.close()


def test_hashes_time_themselves_for_the_exporter(tmp_path: Path) -> None:
    class Seen:
        def __init__(self) -> None:
            self.hash: list[float] = []
            self.hash_rev: list[float] = []

        def on_hash(self, seconds: float) -> None:
            self.hash.append(seconds)

        def on_hash_rev(self, seconds: float) -> None:
            self.hash_rev.append(seconds)

    seen = Seen()
    store = _store(tmp_path / "db", [WRITES])
    try:
        hash_kv_file(store.path, 0, seen)  # type: ignore[arg-type]
        hash_file(store.path, seen)  # type: ignore[arg-type]
        with pytest.raises(ErrFutureRev):
            hash_kv_file(store.path, 99, seen)  # type: ignore[arg-type]
    finally:
        store.close()
    assert len(seen.hash_rev) == 1  # a refused revision is not timed (as etcd)
    assert len(seen.hash) == 1


# Recorded from etcd 3.4.23 (`etcdctl endpoint hashkv --rev R`) after: put a 1, put b 2,
# put a 3, del b, put c "" (revisions 2..6), then `etcdctl compact 4`.
ETCD_HASHKV = {"before-compaction": {0: 1947802976, 3: 1827592406}, "after": {0: 323977103}}


def test_hash_kv_hashes_etcds_bytes(tmp_path: Path) -> None:
    """With etcd's CRC-32C the hash is etcd's own number: the hashed bytes are etcd's,
    including 3.4's choice of what to keep below the compact revision."""
    store = _store(
        tmp_path / "db",
        [[_put("a", "1"), _put("b", "2"), _put("a", "3"), _del("b"), _put("c", "")]],
    )
    conn = store._db()
    try:
        for rev, expected in ETCD_HASHKV["before-compaction"].items():
            assert hash_kv_conn(conn, rev, crc32c).hash == expected
        Log(store).apply(rq.CompactionRequest(revision=4))
        assert hash_kv_conn(conn, 0, crc32c).hash == ETCD_HASHKV["after"][0]
    finally:
        store.close()
