"""The WAL's and the snapshotter's instrumentation seam: a Protocol and its no-op default.

node/wal never imports prometheus_client: the exporter implements `WalObserver`
structurally. Hooks are called from the thread that called `save()` (a worker thread in
the server), after the timed section, so they must be cheap and thread-safe
(prometheus_client's are). Observers that care about a few events subclass
`NullObserver` and override those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol


class WalObserver(Protocol):
    """What the WAL and the snapshotter report; all durations in seconds.

    Each method's body is the no-op default (`NullObserver`).
    """

    def on_fsync(self, seconds: float) -> None:
        """A WAL fdatasync finished (etcd_disk_wal_fsync_duration_seconds)."""
        return None

    def on_write(self, nbytes: int, seconds: float) -> None:
        """WAL records written (etcd_disk_wal_write_bytes_total, ..._write_duration_seconds)."""
        return None

    def on_snapshot_save(self, seconds: float) -> None:
        """A snapshot saved, fsyncs included (etcd_debugging_snap_save_total_duration_seconds)."""
        return None

    def on_snapshot_fsync(self, seconds: float) -> None:
        """A .snap file fsynced (etcd_snap_fsync_duration_seconds)."""
        return None

    def on_snapshot_db_fsync(self, seconds: float) -> None:
        """A .snap.db image fsynced (etcd_snap_db_fsync_duration_seconds)."""
        return None

    def on_snapshot_db_save(self, seconds: float) -> None:
        """A .snap.db image stored (etcd_snap_db_save_total_duration_seconds)."""
        return None


class NullObserver(WalObserver):
    """Discards every observation: the default when no exporter is attached."""


NULL_WAL_OBSERVER = NullObserver()

if TYPE_CHECKING:
    _: WalObserver = NullObserver()
