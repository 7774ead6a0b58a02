"""Timing hooks the store reports to (the exporter turns them into etcd's histograms).

node/mvcc never imports prometheus_client: the member passes one observer
object shared with the WAL and transport, and the store calls only the methods
that object has, so an observer written for another layer still works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable


class BackendObserver(Protocol):
    def on_commit(self, seconds: float) -> None:
        """etcd_disk_backend_commit_duration_seconds: one SQLite COMMIT per applied batch."""

    def on_defrag(self, seconds: float) -> None:
        """etcd_disk_backend_defrag_duration_seconds: one VACUUM."""

    def on_backend_snapshot(self, seconds: float) -> None:
        """etcd_disk_backend_snapshot_duration_seconds: one backup() of the database."""

    def on_compaction(self, seconds: float, keys: int) -> None:
        """etcd_debugging_mvcc_db_compaction_*: duration and rows removed."""


def _noop(*_args: Any) -> None:
    return None


class Hooks:
    """Bound callables for each hook; missing methods become no-ops (looked up once)."""

    __slots__ = ("on_backend_snapshot", "on_commit", "on_compaction", "on_defrag")

    def __init__(self, observer: Any = None) -> None:
        self.on_commit: Callable[[float], None] = getattr(observer, "on_commit", None) or _noop
        self.on_defrag: Callable[[float], None] = getattr(observer, "on_defrag", None) or _noop
        self.on_backend_snapshot: Callable[[float], None] = (
            getattr(observer, "on_backend_snapshot", None) or _noop
        )
        self.on_compaction: Callable[[float, int], None] = (
            getattr(observer, "on_compaction", None) or _noop
        )
