"""Start-up: install a received snapshot image whose marker was saved but not installed.

etcd's recoverSnapshotBackend. A follower records the leader's snapshot (marker) only
after the transport made its image durable, and the install moves the image into place
as the live database (node/server/snapshots.py); a crash in between leaves the database
behind the newest marker with the image beside it, which this installs before the WAL
is replayed. Kept apart from snapshots.py so that bootstrap needs nothing of the
running server.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.mvcc.store import KVStore
    from node.wal import Snapshotter

log = logging.getLogger(__name__)


def received_image(snap_dir: str, index: int) -> str:
    """Where the transport stores the image of the leader's snapshot at `index`."""
    return os.path.join(snap_dir, f"{index:016x}.snap.db")


def recover_backend(snapshotter: Snapshotter, kv: KVStore) -> None:
    """At start-up: install a received image whose marker was saved but not installed.

    The marker is written only after the image is durable, and the image is moved into
    place by the install; a crash in between leaves the database behind the newest
    marker with the image beside it. (A snapshot of the old layout carries its own.)
    """
    newest = snapshotter.load_newest()
    if newest is None or kv.applied_index() >= newest[0].index:
        return
    meta, own_image = newest
    received = received_image(snapshotter.dir, meta.index)
    if os.path.exists(received):
        kv.restore_from(received, move=True)
    elif own_image is not None:
        kv.restore_from(own_image)
    else:
        raise RuntimeError(
            f"database applied index {kv.applied_index()} is behind snapshot {meta.index} "
            f"and no image of it is in {snapshotter.dir}"
        )
    log.info(
        "recovered backend from snapshot image",
        extra={"fields": {"snapshot-index": meta.index, "applied-index": kv.applied_index()}},
    )
