"""Durability through real member processes: kill -9 mid-stream, bounded disk.

An acknowledged write must survive `kill -9` of the whole cluster, at any point
of a stream of writes, with the revision it was acknowledged at; and endless
writes must not grow the WAL and snapshot directories without bound.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import b64, call, put

pytestmark = pytest.mark.cluster


def write_until_stopped(url: str, acked: dict[str, int], stop: threading.Event, tag: str) -> None:
    """Put keys in a loop; record key -> acknowledged revision for every success."""
    for i in range(100_000):
        if stop.is_set():
            return
        key = f"{tag}/{i:06d}"
        try:
            resp = put(url, key, f"value-{i}", timeout=3)
        except OSError:
            return  # the member died under us: this write is not acknowledged
        if "error" in resp:
            return
        acked[key] = int(resp["header"]["revision"])


@pytest.mark.parametrize("size", [1, 3])
def test_acknowledged_writes_survive_kill_9_at_random_points(
    fresh_cluster: Callable[..., LocalCluster], size: int
) -> None:
    cluster = fresh_cluster(
        size, ["--snapshot-count=150", "--experimental-snapshot-catchup-entries=20"]
    )
    rng = random.Random(20261124 + size)
    acked: dict[str, int] = {}
    for round_no in range(4):
        cluster.wait_leader(timeout=30)
        stop = threading.Event()
        writers = [
            threading.Thread(
                target=write_until_stopped,
                args=(m.client_url, acked, stop, f"r{round_no}-{m.name}"),
                daemon=True,
            )
            for m in cluster.members
        ]
        for w in writers:
            w.start()
        time.sleep(rng.uniform(0.3, 1.5))  # a random point in the stream
        for m in cluster.members:
            cluster.kill(m.name)
        stop.set()
        for w in writers:
            w.join(10)
        for m in cluster.members:
            cluster.restart(m.name, wait=False)
        cluster.wait_healthy(timeout=30)
        url = cluster.members[0].client_url
        listing = call(url, "/v3/kv/range", {"key": b64("r"), "range_end": b64("s")}, timeout=15)
        got = {kv["key"]: int(kv["mod_revision"]) for kv in listing.get("kvs", [])}
        lost = [k for k in acked if b64(k) not in got]
        assert not lost, f"round {round_no}: {len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
        moved = [k for k, rev in acked.items() if got[b64(k)] != rev]
        assert not moved, f"round {round_no}: revisions changed for {moved[:3]}"
    assert len(acked) > 20, "the writers barely wrote: the test proved little"


def test_disk_stays_bounded_under_ten_times_the_snapshot_count(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    snapshot_count = 100
    cluster = fresh_cluster(
        1,
        [
            f"--snapshot-count={snapshot_count}",
            "--experimental-snapshot-catchup-entries=10",
            "--wal-segment-bytes=65536",
        ],
    )
    url = cluster.members[0].client_url
    for i in range(10 * snapshot_count):
        assert "error" not in put(url, f"bounded/{i % 50}", "x" * 200)
    member_dir = Path(cluster.members[0].data_dir) / "member"
    segments = sorted((member_dir / "wal").glob("*.wal"))
    snaps = sorted((member_dir / "snap").glob("*.snap"))
    written_bytes = 10 * snapshot_count * 300
    assert len(snaps) <= 2, snaps
    # without release, 300 kB of records would need ~5 segments of 64 KiB; a few remain
    assert len(segments) <= 3, [s.name for s in segments]
    assert sum(s.stat().st_size for s in segments) < written_bytes
