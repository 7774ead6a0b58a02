"""Benchmarks (make bench): codec round trips and apply throughput. Numbers are printed,
never asserted; the machine is shared, so treat them as rough."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.mvcc import codec
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from tests.mvcc.conftest import OnCommit

pytestmark = pytest.mark.bench


def test_codec_round_trips_per_second() -> None:
    put = rq.PutRequest(b"key00001", b"v" * 256)
    n = 200_000
    started = time.perf_counter()
    for i in range(n):
        codec.decode_request(codec.encode_request(i, put))
    took = time.perf_counter() - started
    print(f"\ncodec: {n / took:,.0f} encode+decode/s of a 256-byte put (8-byte key)")


@pytest.mark.parametrize("batch", [1, 16, 256])
def test_apply_puts_per_second(tmp_path: Path, batch: int) -> None:
    store = KVStore.open(str(tmp_path / "db"))
    commits: list[float] = []
    store.hooks = OnCommit(commits.append)
    try:
        n = 20_000 if batch > 1 else 5_000
        entries = [
            (i + 1, codec.encode_request(i, rq.PutRequest(b"k%07d" % (i % 10_000), b"v" * 256)))
            for i in range(n)
        ]
        started = time.perf_counter()
        for lo in range(0, n, batch):
            store.apply_batch(entries[lo : lo + batch])
        took = time.perf_counter() - started
        commits.sort()
        p99 = commits[int(len(commits) * 0.99)]
        print(
            f"\napply: batch={batch:4d} {n / took:,.0f} puts/s "
            f"commit p50={commits[len(commits) // 2] * 1e3:.3f} ms p99={p99 * 1e3:.3f} ms"
        )
    finally:
        store.close()
