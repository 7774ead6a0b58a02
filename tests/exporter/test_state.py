"""Scrape-time families read from a MemberStateSource carry the member's values."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import render
from exporter.metrics import MemberMetrics
from exporter.state import MemberStateSource
from tests.exporter.fake_state import LOCAL, PEER_A, PEER_B, FakeState


def values(metrics: MemberMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition as (name, labels) -> value."""
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


# What each FakeState group is exposed as, written as /metrics shows it. Member ids are
# FakeState's LOCAL, PEER_A and PEER_B in hex.
EXPOSED = {
    "raft: leader and index gauges": """
        etcd_server_has_leader 1
        etcd_server_is_leader 1
        etcd_server_is_learner 0
        etcd_server_proposals_committed_total 152144
        etcd_server_proposals_applied_total 152140
        raftmon_raft_term 3
        raftmon_raft_role{role="leader"} 1
        raftmon_raft_role{role="follower"} 0
        raftmon_raft_pre_votes_started_total 5
        raftmon_raft_follower_match_index{To="df50fb6f50f3e5e8"} 152100
    """,
    "server: counters, info gauges and alarms": """
        etcd_server_id{server_id="a48a826df6fb13ec"} 1
        etcd_server_version{server_version="3.4.23"} 1
        etcd_cluster_version{cluster_version="3.4"} 1
        etcd_server_quota_backend_bytes 2147483648
        etcd_server_proposals_pending 4
        etcd_server_leader_changes_seen_total 1
        etcd_server_proposals_failed_total 2
        etcd_server_heartbeat_send_failures_total 3
        etcd_server_slow_apply_total 4
        etcd_server_slow_read_indexes_total 5
        etcd_server_read_indexes_failed_total 6
        etcd_debugging_server_alarms{server_id="a48a826df6fb13ec",alarm_type="NOSPACE"} 1
    """,
    "mvcc: both etcd's and the debugging names": """
        etcd_mvcc_db_total_size_in_bytes 57208832
        etcd_debugging_mvcc_db_total_size_in_bytes 57208832
        etcd_mvcc_db_total_size_in_use_in_bytes 40000000
        etcd_mvcc_put_total 152136
        etcd_debugging_mvcc_put_total 152136
        etcd_debugging_mvcc_compact_revision -1
        etcd_debugging_mvcc_keys_total 39608
        etcd_debugging_mvcc_watch_stream_total 12
    """,
    "peer: labelled with hex member ids": """
        etcd_network_peer_sent_bytes_total{To="7578dd1f1c11f810"} 55959840
        etcd_network_peer_received_bytes_total{From="0"} 4920
        etcd_network_peer_sent_failures_total{To="df50fb6f50f3e5e8"} 7
        etcd_network_active_peers{Local="a48a826df6fb13ec",Remote="7578dd1f1c11f810"} 1
        etcd_network_active_peers{Local="a48a826df6fb13ec",Remote="df50fb6f50f3e5e8"} 0
        etcd_network_disconnected_peers_total{Local="a48a826df6fb13ec",Remote="df50fb6f50f3e5e8"} 2
    """,
    "fault: a series per peer even when off": """
        raftmon_fault_wal_fsync_delay_seconds 0.03
        raftmon_fault_raft_ticks_paused 0
        raftmon_fault_peer_delay_seconds{To="df50fb6f50f3e5e8"} 0.2
        raftmon_fault_peer_delay_seconds{To="7578dd1f1c11f810"} 0
        raftmon_fault_peer_drop{To="df50fb6f50f3e5e8"} 1
        raftmon_fault_peer_drop{To="7578dd1f1c11f810"} 0
    """,
}
EXPOSED_LINES = [
    (group, line.strip()) for group, text in EXPOSED.items() for line in text.strip().splitlines()
]


def test_the_expected_ids_are_fake_states_members() -> None:
    hex_ids = {f"{i:x}" for i in (LOCAL, PEER_A, PEER_B)}
    written = {m for _, line in EXPOSED_LINES for m in re.findall(r'"([0-9a-f]{16})"', line)}
    assert written <= hex_ids


@pytest.mark.parametrize(
    ("group", "line"), EXPOSED_LINES, ids=[line.split(" ")[0] for _, line in EXPOSED_LINES]
)
def test_each_state_group_is_exposed_with_its_values(
    metrics: MemberMetrics, group: str, line: str
) -> None:
    (family,) = text_string_to_metric_families(line + "\n")
    (sample,) = family.samples
    assert v(values(metrics), sample.name, **sample.labels) == pytest.approx(sample.value), group


def test_the_unknown_sender_pseudo_peer_has_bytes_but_no_connection_series(
    metrics: MemberMetrics,
) -> None:
    s = values(metrics)
    assert v(s, "etcd_network_peer_received_bytes_total", From="0") == 4920
    assert (
        "etcd_network_active_peers",
        frozenset({("Local", f"{LOCAL:x}"), ("Remote", "0")}),
    ) not in s


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
