"""Maintenance.Snapshot's stream: database blobs of 32 KiB, then their sha256 (etcd 3.4)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from node.mvcc import codec
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from node.server.snapshot_stream import (
    SEND_BUFFER_BYTES,
    SHA256_SIZE,
    has_checksum,
    stream_snapshot,
)

VALUE = b"v" * 3000


def _apply(store: KVStore, *reqs: object) -> None:
    first = store.applied_index() + 1
    entries = [(first + i, codec.encode_request(first + i, r)) for i, r in enumerate(reqs)]
    for result in store.apply_batch(entries):
        assert result.error is None, result.error


def _filled(path: Path, keys: int, **open_args: float) -> KVStore:
    store = KVStore.open(str(path), **open_args)  # type: ignore[arg-type]
    _apply(store, *(rq.PutRequest(key=b"k%04d" % i, value=VALUE) for i in range(keys)))
    return store


async def _collect(store: KVStore, directory: Path) -> list[rq.SnapshotChunk]:
    return [chunk async for chunk in stream_snapshot(store, str(directory))]


async def test_stream_is_database_blobs_then_their_sha256(tmp_path: Path) -> None:
    store = _filled(tmp_path / "member" / "db", 100)
    try:
        chunks = await _collect(store, tmp_path / "member")
    finally:
        store.close()
    *data, trailer = chunks
    image = b"".join(c.blob for c in data)
    assert len(data) >= 3
    assert all(len(c.blob) == SEND_BUFFER_BYTES for c in data[:-1])
    assert 0 < len(data[-1].blob) <= SEND_BUFFER_BYTES
    # remaining_bytes counts the database bytes after each blob, down to 0
    assert [c.remaining_bytes for c in data] == [
        len(image) - sum(len(d.blob) for d in data[: i + 1]) for i in range(len(data))
    ]
    assert data[-1].remaining_bytes == 0
    assert trailer == rq.SnapshotChunk(remaining_bytes=0, blob=hashlib.sha256(image).digest())
    assert has_checksum(len(image) + SHA256_SIZE)
    assert not has_checksum(len(image))


async def test_saved_stream_is_a_complete_database(tmp_path: Path) -> None:
    store = _filled(tmp_path / "member" / "db", 50)
    _apply(store, rq.LeaseGrantRequest(ttl=60, id=7), rq.PutRequest(key=b"leased", lease=7))
    try:
        chunks = await _collect(store, tmp_path / "member")
        revision = store.current_revision()
    finally:
        store.close()
    copy = tmp_path / "copy.db"
    copy.write_bytes(b"".join(c.blob for c in chunks[:-1]))
    restored = KVStore.open(str(copy))
    try:
        assert restored.current_revision() == revision
        assert restored.get(b"k0049") is not None
        assert restored.lease_ttl(7) == 60
        assert restored.lease_keys(7) == [b"leased"]
    finally:
        restored.close()


async def test_stream_holds_entries_of_the_open_batch(tmp_path: Path) -> None:
    # a batch that would stay open for an hour: the stream commits it first
    store = _filled(tmp_path / "member" / "db", 1, batch_interval=3600.0, batch_limit=10**6)
    _apply(store, rq.PutRequest(key=b"late", value=b"x"))
    try:
        chunks = await _collect(store, tmp_path / "member")
    finally:
        store.close()
    copy = tmp_path / "copy.db"
    copy.write_bytes(b"".join(c.blob for c in chunks[:-1]))
    restored = KVStore.open(str(copy))
    try:
        assert restored.get(b"late") is not None
    finally:
        restored.close()


async def test_stream_leaves_no_file_behind(tmp_path: Path) -> None:
    member = tmp_path / "member"
    store = _filled(member / "db", 20)

    def copies() -> list[str]:
        return [name for name in os.listdir(member) if "snapshot" in name]

    try:
        stream = stream_snapshot(store, str(member))
        first = await anext(stream)  # the copy is open, already unlinked
        assert first.blob
        assert copies() == []
        await stream.aclose()  # a client that goes away mid-stream
        await _collect(store, member)
        assert copies() == []
    finally:
        store.close()


@pytest.mark.parametrize(
    ("size", "expected"),
    [(4096, False), (4096 + 32, True), (512 * 7 + 32, True), (4096 + 31, False), (32, True)],
)
def test_has_checksum_is_etcds_sector_rule(size: int, expected: bool) -> None:
    assert has_checksum(size) is expected
