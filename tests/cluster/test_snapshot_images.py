"""Snapshots are markers: no database copy stays on disk, one travels only while needed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import put, value_of, wait_until

pytestmark = pytest.mark.cluster

SNAP_SUFFIXES = (".snap", ".snap.tmp")
LIVE_DB = ("db", "db-wal", "db-shm")


def _images(snap_dir: Path) -> list[str]:
    """The database images in a snap directory besides the live db.

    An image being written counts once with its SQLite journal and temporary name.
    """
    if not snap_dir.is_dir():
        return []
    names = set()
    for path in snap_dir.iterdir():
        name = path.name
        if name in LIVE_DB or name.endswith(SNAP_SUFFIXES) or name.endswith(".damaged"):
            continue
        for suffix in ("-journal", "-wal", "-shm", ".partial", ".part"):
            name = name.removesuffix(suffix)
        names.add(name)
    return sorted(names)


def test_a_lagging_follower_catches_up_with_at_most_one_image_on_disk_and_none_kept(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(
        3, ["--snapshot-count=100", "--experimental-snapshot-catchup-entries=20"]
    )
    leader = cluster.wait_leader()
    follower = next(m.name for m in cluster.members if m.name != leader)
    writer = cluster.member(leader).client_url
    for i in range(150):
        assert "error" not in put(writer, f"img/{i:04d}", "x" * 100)
    cluster.kill(follower)  # it lags by far more than the 20 catch-up entries
    for i in range(150, 350):
        assert "error" not in put(writer, f"img/{i:04d}", "x" * 100)
    snap_dirs = {m.name: Path(m.data_dir) / "member" / "snap" for m in cluster.members}
    # Snapshots were made: each member's snap dir holds markers and its live db only.
    for name, snap_dir in snap_dirs.items():
        markers = sorted(snap_dir.glob("*.snap"))
        assert markers, f"{name} made no snapshot"
        assert all(p.stat().st_size < 4096 for p in markers), markers
        assert _images(snap_dir) == [], name
    seen: dict[str, int] = dict.fromkeys(snap_dirs, 0)
    done = threading.Event()

    def watch_images() -> None:
        for _ in range(20_000):  # bounded: ~ 0.005 s apart
            if done.wait(0.005):
                return
            for name, snap_dir in snap_dirs.items():
                try:
                    seen[name] = max(seen[name], len(_images(snap_dir)))
                except OSError:
                    pass  # a file vanished while listed

    watcher = threading.Thread(target=watch_images, daemon=True)
    watcher.start()
    try:
        cluster.restart(follower)
        url = cluster.member(follower).client_url
        wait_until(
            lambda: value_of(url, "img/0349", serializable=True) == "x" * 100,
            timeout=30,
            what="lagging follower catches up",
        )
    finally:
        done.set()
        watcher.join(10)
    log_path = cluster.member(follower).log_path
    wait_until(
        lambda: "applied snapshot from leader" in log_path.read_text(),
        timeout=10,
        what="the follower's log of the install",
    )
    assert all(count <= 1 for count in seen.values()), seen
    # Once the upload ended and the image was installed, no copy is left anywhere.
    wait_until(
        lambda: all(_images(d) == [] for d in snap_dirs.values()),
        timeout=15,
        what="images deleted after the transfer",
    )
