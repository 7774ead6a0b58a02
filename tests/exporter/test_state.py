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


def test_a_member_without_leader_reports_has_leader_zero(
    metrics: MemberMetrics, fake_state: FakeState
) -> None:
    fake_state.raft = replace(fake_state.raft, lead=0, role="pre_candidate", follower_match={})
    s = values(metrics)
    assert v(s, "etcd_server_has_leader") == 0
    assert v(s, "etcd_server_is_leader") == 0
    assert v(s, "raftmon_raft_role", role="pre_candidate") == 1
    assert not [key for key in s if key[0] == "raftmon_raft_follower_match_index"]


_A, _B, _LOCAL = f"{PEER_A:x}", f"{PEER_B:x}", f"{LOCAL:x}"

# What each FakeState group becomes: (group, family, labels, value). One row per sample.
FED: list[tuple[str, str, dict[str, str], float]] = [
    # RaftState -> leader and index gauges
    ("raft", "etcd_server_has_leader", {}, 1),
    ("raft", "etcd_server_is_leader", {}, 1),
    ("raft", "etcd_server_is_learner", {}, 0),
    ("raft", "etcd_server_proposals_committed_total", {}, 152144),
    ("raft", "etcd_server_proposals_applied_total", {}, 152140),
    ("raft", "raftmon_raft_term", {}, 3),
    ("raft", "raftmon_raft_role", {"role": "leader"}, 1),
    ("raft", "raftmon_raft_role", {"role": "follower"}, 0),
    ("raft", "raftmon_raft_pre_votes_started_total", {}, 5),
    ("raft", "raftmon_raft_follower_match_index", {"To": _B}, 152100),
    # ServerState -> counters, info gauges and alarms
    ("server", "etcd_server_id", {"server_id": "a48a826df6fb13ec"}, 1),
    ("server", "etcd_server_version", {"server_version": "3.4.23"}, 1),
    ("server", "etcd_cluster_version", {"cluster_version": "3.4"}, 1),
    ("server", "etcd_server_quota_backend_bytes", {}, 2 * 1024**3),
    ("server", "etcd_server_proposals_pending", {}, 4),
    ("server", "etcd_server_leader_changes_seen_total", {}, 1),
    ("server", "etcd_server_proposals_failed_total", {}, 2),
    ("server", "etcd_server_heartbeat_send_failures_total", {}, 3),
    ("server", "etcd_server_slow_apply_total", {}, 4),
    ("server", "etcd_server_slow_read_indexes_total", {}, 5),
    ("server", "etcd_server_read_indexes_failed_total", {}, 6),
    ("server", "etcd_debugging_server_alarms", {"server_id": _LOCAL, "alarm_type": "NOSPACE"}, 1),
    # MvccState -> both etcd's and the debugging names
    ("mvcc", "etcd_mvcc_db_total_size_in_bytes", {}, 57208832),
    ("mvcc", "etcd_debugging_mvcc_db_total_size_in_bytes", {}, 57208832),
    ("mvcc", "etcd_mvcc_db_total_size_in_use_in_bytes", {}, 40000000),
    ("mvcc", "etcd_mvcc_put_total", {}, 152136),
    ("mvcc", "etcd_debugging_mvcc_put_total", {}, 152136),
    ("mvcc", "etcd_debugging_mvcc_compact_revision", {}, -1),
    ("mvcc", "etcd_debugging_mvcc_keys_total", {}, 39608),
    ("mvcc", "etcd_debugging_mvcc_watch_stream_total", {}, 12),
    # PeerState -> series labelled with hex member ids
    ("peer", "etcd_network_peer_sent_bytes_total", {"To": _A}, 55959840),
    ("peer", "etcd_network_peer_received_bytes_total", {"From": "0"}, 4920),
    ("peer", "etcd_network_peer_sent_failures_total", {"To": _B}, 7),
    ("peer", "etcd_network_active_peers", {"Local": _LOCAL, "Remote": _A}, 1),
    ("peer", "etcd_network_active_peers", {"Local": _LOCAL, "Remote": _B}, 0),
    ("peer", "etcd_network_disconnected_peers_total", {"Local": _LOCAL, "Remote": _B}, 2),
    # FaultState -> a series per peer even when the fault is off
    ("fault", "raftmon_fault_wal_fsync_delay_seconds", {}, 0.03),
    ("fault", "raftmon_fault_raft_ticks_paused", {}, 0),
    ("fault", "raftmon_fault_peer_delay_seconds", {"To": _B}, 0.2),
    ("fault", "raftmon_fault_peer_delay_seconds", {"To": _A}, 0),
    ("fault", "raftmon_fault_peer_drop", {"To": _B}, 1),
    ("fault", "raftmon_fault_peer_drop", {"To": _A}, 0),
]


@pytest.mark.parametrize(
    ("group", "name", "labels", "expected"),
    FED,
    ids=[f"{g}:{n}{{{','.join(f'{k}={x}' for k, x in lb.items())}}}" for g, n, lb, _ in FED],
)
def test_each_state_group_feeds_its_families(
    metrics: MemberMetrics, group: str, name: str, labels: dict[str, str], expected: float
) -> None:
    assert v(values(metrics), name, **labels) == pytest.approx(expected)


def test_the_unknown_sender_pseudo_peer_has_bytes_but_no_connection_series(
    metrics: MemberMetrics,
) -> None:
    s = values(metrics)
    assert v(s, "etcd_network_peer_received_bytes_total", From="0") == 4920
    assert ("etcd_network_active_peers", frozenset({("Local", _LOCAL), ("Remote", "0")})) not in s


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
