"""The store's instrumentation seam: a Protocol of its timed events and its no-op default.

node/mvcc never imports prometheus_client: the exporter implements `BackendObserver`
structurally and turns each event into etcd's histogram. Hooks run on whichever
thread did the work (the loop for commits, a worker for defrag and backups), so they
must be cheap and thread-safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol


class BackendObserver(Protocol):
    """What the store reports; all durations in seconds. Each body is the no-op default."""

    def on_commit(self, seconds: float) -> None:
        """etcd_disk_backend_commit_duration_seconds: one SQLite COMMIT per applied batch."""
        return None

    def on_defrag(self, seconds: float) -> None:
        """etcd_disk_backend_defrag_duration_seconds: one VACUUM."""
        return None

    def on_backend_snapshot(self, seconds: float) -> None:
        """etcd_disk_backend_snapshot_duration_seconds: one backup() of the database."""
        return None

    def on_compaction(self, seconds: float, keys: int, *, batched: bool = False) -> None:
        """etcd_debugging_mvcc_db_compaction_*: duration and rows removed.

        `batched`: the deletion ran in batches, each reported by on_compaction_pause.
        """
        return None

    def on_compaction_pause(self, seconds: float) -> None:
        """etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds: one batch."""
        return None

    def on_hash(self, seconds: float) -> None:
        """etcd_mvcc_hash_duration_seconds: one hash of the whole store (Maintenance.Hash)."""
        return None

    def on_hash_rev(self, seconds: float) -> None:
        """etcd_mvcc_hash_rev_duration_seconds: one HashKV of the key history."""
        return None


class NullBackendObserver(BackendObserver):
    """Discards every observation: the default when no exporter is attached."""


NULL_BACKEND_OBSERVER = NullBackendObserver()

if TYPE_CHECKING:
    _: BackendObserver = NULL_BACKEND_OBSERVER
