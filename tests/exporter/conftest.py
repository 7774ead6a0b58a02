"""Fixtures: a MemberMetrics on its own registry, fed by FakeState, with events observed."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.exposition import render
from exporter.http import metrics_handler
from exporter.metrics import MemberMetrics
from tests.exporter.fake_state import PEER_A, PEER_B, FakeState


@pytest.fixture
def fake_state() -> FakeState:
    return FakeState()


@pytest.fixture
def member_metrics(fake_state: FakeState) -> MemberMetrics:
    """Every EVENT family observed at least once, so every family has samples.

    Built with `extensive=True` (--metrics=extensive), so the families gated by it are
    exposed too; `basic_exposition` is the default member's.
    """
    metrics = MemberMetrics(
        CollectorRegistry(), state=fake_state, peer_ids=(PEER_A, PEER_B), extensive=True
    )
    metrics.on_fsync(0.004)
    metrics.on_write(512, 0.0002)
    metrics.on_commit(0.02)
    metrics.on_defrag(1.0)
    metrics.on_backend_snapshot(0.5)
    metrics.on_snapshot_save(0.01)
    metrics.on_snapshot_fsync(0.003)
    metrics.on_snapshot_db_fsync(0.003)
    metrics.on_snapshot_db_save(0.3)
    metrics.on_apply(0.002)
    metrics.on_apply_request("Put", True, 0.0004)
    metrics.on_compaction_pause(0.002)
    metrics.on_compaction(0.2)
    metrics.on_hash(0.05)
    metrics.on_hash_rev(0.05)
    metrics.on_lease_granted(60)
    metrics.on_lease_renewed()
    metrics.on_lease_revoked()
    metrics.on_lease_expired()
    metrics.on_loop_lag(0.001)
    metrics.on_health(True)
    metrics.on_learner_promoted()
    metrics.on_rtt(PEER_A, 0.0006)
    metrics.on_snapshot_sent(PEER_A, 1.5, ok=True)
    metrics.on_snapshot_received(PEER_B, 1.5, ok=False)
    put = metrics.rpc("etcdserverpb.KV", "Put")
    metrics.request_started(put, 120)
    metrics.request_finished(put, metrics.request_duration["Put"], "OK", 0.012, 80)
    metrics.call_handled(put, 0.012)
    metrics_handler(metrics.registry)  # a member always serves /metrics: promhttp_* exist
    return metrics


@pytest.fixture
def exposition(member_metrics: MemberMetrics) -> str:
    return render(member_metrics.registry).decode()


@pytest.fixture
def basic_exposition(fake_state: FakeState) -> str:
    """A member with etcd's default --metrics=basic, after one Put through the gateway."""
    metrics = MemberMetrics(CollectorRegistry(), state=fake_state, process_metrics=False)
    put = metrics.rpc("etcdserverpb.KV", "Put")
    metrics.request_started(put, 120)
    metrics.request_finished(put, metrics.request_duration["Put"], "OK", 0.012, 80)
    return render(metrics.registry).decode()
