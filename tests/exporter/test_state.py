"""Scrape-time families read from a MemberStateSource carry the member's values."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from exporter.exposition import render
from exporter.metrics import MemberMetrics
from exporter.state import MemberStateSource
from tests.exporter.fake_state import LOCAL, PEER_A, PEER_B, FakeState


def values(metrics: MemberMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition as (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(render(metrics.registry).decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def v(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def metrics(fake_state: FakeState) -> MemberMetrics:
    return MemberMetrics(CollectorRegistry(), state=fake_state, process_metrics=False)


def test_fake_state_satisfies_the_protocol(fake_state: FakeState) -> None:
    assert isinstance(fake_state, MemberStateSource)


def test_raft_state_becomes_leader_and_index_gauges(metrics: MemberMetrics) -> None:
    s = values(metrics)
    assert v(s, "etcd_server_has_leader") == 1
    assert v(s, "etcd_server_is_leader") == 1
    assert v(s, "etcd_server_is_learner") == 0
    assert v(s, "etcd_server_proposals_committed_total") == 152144
    assert v(s, "etcd_server_proposals_applied_total") == 152140
    assert v(s, "raftmon_raft_term") == 3
    assert v(s, "raftmon_raft_role", role="leader") == 1
    assert v(s, "raftmon_raft_role", role="follower") == 0
    assert v(s, "raftmon_raft_pre_votes_started_total") == 5
    assert v(s, "raftmon_raft_follower_match_index", To=f"{PEER_B:x}") == 152100


def test_a_member_without_leader_reports_has_leader_zero(
    metrics: MemberMetrics, fake_state: FakeState
) -> None:
    fake_state.raft = replace(fake_state.raft, lead=0, role="pre_candidate", follower_match={})
    s = values(metrics)
    assert v(s, "etcd_server_has_leader") == 0
    assert v(s, "etcd_server_is_leader") == 0
    assert v(s, "raftmon_raft_role", role="pre_candidate") == 1
    assert not [key for key in s if key[0] == "raftmon_raft_follower_match_index"]


def test_server_state_becomes_counters_info_and_alarms(metrics: MemberMetrics) -> None:
    s = values(metrics)
    assert v(s, "etcd_server_id", server_id="a48a826df6fb13ec") == 1
    assert v(s, "etcd_server_version", server_version="3.4.23") == 1
    assert v(s, "etcd_cluster_version", cluster_version="3.4") == 1
    assert v(s, "etcd_server_quota_backend_bytes") == 2 * 1024**3
    assert v(s, "etcd_server_proposals_pending") == 4
    assert v(s, "etcd_server_leader_changes_seen_total") == 1
    assert v(s, "etcd_server_proposals_failed_total") == 2
    assert v(s, "etcd_server_heartbeat_send_failures_total") == 3
    assert v(s, "etcd_server_slow_apply_total") == 4
    assert v(s, "etcd_server_slow_read_indexes_total") == 5
    assert v(s, "etcd_server_read_indexes_failed_total") == 6
    assert v(s, "etcd_debugging_server_alarms", server_id=f"{LOCAL:x}", alarm_type="NOSPACE") == 1


def test_mvcc_state_feeds_both_etcd_and_debugging_names(metrics: MemberMetrics) -> None:
    s = values(metrics)
    for name in ("etcd_mvcc_db_total_size_in_bytes", "etcd_debugging_mvcc_db_total_size_in_bytes"):
        assert v(s, name) == 57208832
    assert v(s, "etcd_mvcc_db_total_size_in_use_in_bytes") == 40000000
    assert v(s, "etcd_mvcc_put_total") == v(s, "etcd_debugging_mvcc_put_total") == 152136
    assert v(s, "etcd_debugging_mvcc_compact_revision") == -1
    assert v(s, "etcd_debugging_mvcc_keys_total") == 39608
    assert v(s, "etcd_debugging_mvcc_watch_stream_total") == 12


def test_peer_state_is_labelled_with_hex_member_ids(metrics: MemberMetrics) -> None:
    s = values(metrics)
    a, b, local = f"{PEER_A:x}", f"{PEER_B:x}", f"{LOCAL:x}"
    assert v(s, "etcd_network_peer_sent_bytes_total", To=a) == 55959840
    assert v(s, "etcd_network_peer_received_bytes_total", From="0") == 4920
    assert v(s, "etcd_network_peer_sent_failures_total", To=b) == 7
    assert v(s, "etcd_network_active_peers", Local=local, Remote=a) == 1
    assert v(s, "etcd_network_active_peers", Local=local, Remote=b) == 0
    assert v(s, "etcd_network_disconnected_peers_total", Local=local, Remote=b) == 2
    # The unknown-sender pseudo peer has bytes but no connection series.
    assert ("etcd_network_active_peers", frozenset({("Local", local), ("Remote", "0")})) not in s


def test_fault_state_has_a_series_per_peer_even_when_off(metrics: MemberMetrics) -> None:
    s = values(metrics)
    a, b = f"{PEER_A:x}", f"{PEER_B:x}"
    assert v(s, "raftmon_fault_wal_fsync_delay_seconds") == pytest.approx(0.03)
    assert v(s, "raftmon_fault_raft_ticks_paused") == 0
    assert v(s, "raftmon_fault_peer_delay_seconds", To=b) == pytest.approx(0.2)
    assert v(s, "raftmon_fault_peer_delay_seconds", To=a) == 0
    assert v(s, "raftmon_fault_peer_drop", To=b) == 1
    assert v(s, "raftmon_fault_peer_drop", To=a) == 0


def test_state_is_read_at_every_scrape(metrics: MemberMetrics, fake_state: FakeState) -> None:
    assert v(values(metrics), "etcd_server_proposals_committed_total") == 152144
    fake_state.raft = replace(fake_state.raft, commit_index=152200)
    assert v(values(metrics), "etcd_server_proposals_committed_total") == 152200


def test_a_failing_source_part_loses_only_its_own_families(
    metrics: MemberMetrics, fake_state: FakeState, caplog: pytest.LogCaptureFixture
) -> None:
    fake_state.broken.add("mvcc_state")
    with caplog.at_level(logging.WARNING, logger="exporter.collectors"):
        s = values(metrics)
    names = {name for name, _ in s}
    assert "etcd_mvcc_db_total_size_in_bytes" not in names
    assert "etcd_server_has_leader" in names
    assert "etcd_network_peer_sent_bytes_total" in names
    assert any("part=_mvcc" in record.getMessage() for record in caplog.records)


def test_without_a_state_source_only_event_families_are_exposed() -> None:
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False)
    text = render(metrics.registry).decode()
    assert "etcd_server_has_leader" not in text
    assert "etcd_disk_wal_fsync_duration_seconds_count 0" in text
    metrics.attach_state(FakeState())
    assert "etcd_server_has_leader 1" in render(metrics.registry).decode()


def test_process_families_come_from_the_os() -> None:
    metrics = MemberMetrics(CollectorRegistry())
    s = values(metrics)
    assert v(s, "os_fd_used") >= 3
    assert v(s, "os_fd_limit") >= v(s, "os_fd_used")
    assert v(s, "process_resident_memory_bytes") > 0
    assert v(s, "process_virtual_memory_max_bytes") > 0
