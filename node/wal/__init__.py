"""The member's write-ahead log and snapshot files.

`WAL` persists Raft entries, hard state and snapshot markers in preallocated,
CRC-framed segment files with one write and one fdatasync per save (group
commit); `WAL.open` replays them, truncating a torn tail and refusing
corruption. `Snapshotter` keeps snapshot metadata beside the state machine's
database image. Durations reach the exporter through the `WalObserver` hooks;
nothing here imports prometheus_client.
"""

from node.wal.errors import (
    SnapshotError,
    WALClosedError,
    WALCorruptError,
    WALError,
    WALExistsError,
    WALLockedError,
    WALNotFoundError,
    WALWriteError,
)
from node.wal.observer import NullObserver, WalObserver
from node.wal.record import WalSnapshot
from node.wal.recovery import Recovered
from node.wal.snapshotter import Snapshotter
from node.wal.wal import DEFAULT_SEGMENT_SIZE, WAL

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "WAL",
    "NullObserver",
    "Recovered",
    "SnapshotError",
    "Snapshotter",
    "WALClosedError",
    "WALCorruptError",
    "WALError",
    "WALExistsError",
    "WALLockedError",
    "WALNotFoundError",
    "WALWriteError",
    "WalObserver",
    "WalSnapshot",
]
