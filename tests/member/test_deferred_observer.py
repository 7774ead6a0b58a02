"""node.member.deferred_observer: a member's events before the exporter exists are kept."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from exporter.metrics import MemberMetrics
from node.member.deferred_observer import HOOK_NAMES, DeferredObserver
from node.server.observer import NullMemberObserver


class Recording(NullMemberObserver):
    """An observer that keeps every call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def on_commit(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(("on_commit", (seconds,)))

    def on_rtt(self, peer_id: int, seconds: float) -> None:
        with self._lock:
            self.calls.append(("on_rtt", (peer_id, seconds)))

    def on_compaction(self, seconds: float, keys: int, *, batched: bool = False) -> None:
        with self._lock:
            self.calls.append(("on_compaction", (seconds, keys, batched)))


def test_every_hook_of_a_member_is_deferred() -> None:
    assert {"on_fsync", "on_write", "on_commit", "on_rtt", "on_apply", "on_health"} <= set(
        HOOK_NAMES
    )


def test_recorded_events_are_replayed_in_order_then_hooks_are_the_targets() -> None:
    observer = DeferredObserver()
    kept = observer.on_commit  # a layer that kept the hook before the exporter existed
    observer.on_commit(0.001)
    observer.on_rtt(7, 0.002)
    observer.on_compaction(0.5, 10, batched=True)
    target = Recording()
    assert observer.attach(target) == 3
    assert target.calls == [
        ("on_commit", (0.001,)),
        ("on_rtt", (7, 0.002)),
        ("on_compaction", (0.5, 10, True)),
    ]
    assert observer.on_commit == target.on_commit  # no forwarding left on the hot path
    kept(0.003)
    assert target.calls[-1] == ("on_commit", (0.003,))
    with pytest.raises(RuntimeError):
        observer.attach(Recording())


def test_what_is_recorded_is_bounded() -> None:
    observer = DeferredObserver(limit=2)
    for _ in range(5):
        observer.on_commit(0.001)
    target = Recording()
    assert observer.attach(target) == 2
    assert observer.dropped == 3


def test_no_event_is_lost_while_attaching_from_another_thread() -> None:
    observer = DeferredObserver()
    kept = observer.on_commit
    target = Recording()
    calls = 20_000

    def report() -> None:
        for _ in range(calls):
            kept(0.001)

    worker = threading.Thread(target=report)
    worker.start()
    observer.attach(target)
    worker.join(60)
    assert len(target.calls) == calls


def test_the_exporter_counts_what_happened_before_it_was_built() -> None:
    observer = DeferredObserver()
    observer.on_fsync(0.002)
    observer.on_fsync(0.004)
    metrics = MemberMetrics()
    observer.attach(metrics)
    observer.on_fsync(0.001)
    count = metrics.registry.get_sample_value("etcd_disk_wal_fsync_duration_seconds_count")
    assert count == 3
