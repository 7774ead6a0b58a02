"""raftmon's exposition against real etcd 3.4.23's (the reference dump in testdata/).

Every family both expose must agree on type, label names, bucket bounds and help text;
every etcd family raftmon leaves out must be listed in LEFT_OUT with a reason; names
must come out exactly as etcd writes them (no `_created`, no extra or missing `_total`).
"""

from __future__ import annotations

from math import inf
from pathlib import Path

import pytest

from exporter import catalog
from exporter.catalog import CATALOG, LEFT_OUT, Kind
from tests.exporter.exposition_text import RawFamily, raw_families

REFERENCE = Path(__file__).parent / "testdata" / "etcd-3.4.23-metrics.txt"


@pytest.fixture(scope="module")
def etcd() -> dict[str, RawFamily]:
    return raw_families(REFERENCE.read_text())


@pytest.fixture
def ours(exposition: str) -> dict[str, RawFamily]:
    return raw_families(exposition)


def test_every_catalog_family_is_exposed_with_its_declared_type(
    ours: dict[str, RawFamily],
) -> None:
    declared = {spec.name: spec.kind.value for spec in CATALOG}
    exposed = {name: fam.type for name, fam in ours.items()}
    assert exposed == declared


def test_a_basic_member_exposes_no_family_gated_by_extensive(basic_exposition: str) -> None:
    """etcd's default (--metrics=basic) has no grpc_server_handling_seconds; neither has ours."""
    gated = {spec.name for spec in CATALOG if spec.only_with}
    assert gated == {"grpc_server_handling_seconds"}
    exposed = raw_families(basic_exposition).keys()
    assert exposed.isdisjoint(gated)
    assert "grpc_server_handled_total" in exposed


def test_handling_histogram_is_go_grpc_prometheus_one(ours: dict[str, RawFamily]) -> None:
    """As a real etcd 3.4.23 with --metrics=extensive exposes it (help, labels, DefBuckets)."""
    family = ours["grpc_server_handling_seconds"]
    assert family.type == "histogram"
    assert family.help == (
        "Histogram of response latency (seconds) of gRPC that had been application-level"
        " handled by the server."
    )
    assert family.label_names == {"grpc_method", "grpc_service", "grpc_type"}
    assert sorted(family.buckets) == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, inf]


def test_extensive_pre_initialises_the_histogram_of_every_method_etcd_has(
    exposition: str,
) -> None:
    """etcd registers every method's children at start: 41 methods, as started_total."""
    reference = REFERENCE.read_text()
    started = {
        line[len("grpc_server_started_total") : line.rindex("}") + 1]
        for line in reference.splitlines()
        if line.startswith("grpc_server_started_total{")
    }
    counted = {
        line[len("grpc_server_handling_seconds_count") : line.rindex("}") + 1]
        for line in exposition.splitlines()
        if line.startswith("grpc_server_handling_seconds_count{")
    }
    assert len(started) == 41
    assert counted == started


def test_shared_families_have_etcds_type_labels_buckets_and_help(
    etcd: dict[str, RawFamily], ours: dict[str, RawFamily]
) -> None:
    shared = sorted(etcd.keys() & ours.keys())
    assert len(shared) > 80  # the bulk of etcd's families, not a vacuous pass
    mismatches = [
        f"{name}: {what} etcd={theirs!r} raftmon={mine!r}"
        for name in shared
        for what, theirs, mine in (
            ("type", etcd[name].type, ours[name].type),
            ("labels", sorted(etcd[name].label_names), sorted(ours[name].label_names)),
            ("buckets", sorted(etcd[name].buckets), sorted(ours[name].buckets)),
            ("help", etcd[name].help, ours[name].help),
            ("samples", sorted(etcd[name].sample_names), sorted(ours[name].sample_names)),
        )
        if theirs != mine
    ]
    assert mismatches == []


def test_every_etcd_family_raftmon_leaves_out_is_listed_with_a_reason(
    etcd: dict[str, RawFamily], ours: dict[str, RawFamily]
) -> None:
    missing = etcd.keys() - ours.keys()
    assert sorted(missing - LEFT_OUT.keys()) == []
    assert sorted(LEFT_OUT.keys() - etcd.keys()) == []  # no stale entries
    assert sorted(LEFT_OUT.keys() & ours.keys()) == []  # not both exposed and left out
    assert all(len(reason) > 20 for reason in LEFT_OUT.values())


def test_no_created_series(exposition: str) -> None:
    assert "_created" not in exposition


def test_sample_names_are_exactly_the_family_name(ours: dict[str, RawFamily]) -> None:
    """No `_total` appended to counters or gauges, nothing but _bucket/_sum/_count on histograms."""
    wrong = {
        name: sorted(fam.sample_names)
        for name, fam in ours.items()
        if fam.sample_names
        != (
            {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if fam.type == "histogram"
            else {name}
        )
    }
    assert wrong == {}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        # etcd counters without the `_total` suffix stay bare
        ("etcd_server_health_failures", "counter"),
        ("etcd_server_health_success", "counter"),
        ("etcd_server_learner_promote_successes", "counter"),
        ("etcd_network_snapshot_send_success", "counter"),
        ("etcd_network_snapshot_receive_failures", "counter"),
        # etcd gauges with a `_total` suffix stay gauges
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_server_proposals_applied_total", "gauge"),
        ("etcd_disk_wal_write_bytes_total", "gauge"),
        ("etcd_debugging_mvcc_keys_total", "gauge"),
    ],
)
def test_etcds_misleading_names_keep_etcds_type_and_sample_name(
    name: str, kind: str, ours: dict[str, RawFamily]
) -> None:
    assert ours[name].type == kind
    assert ours[name].sample_names == {name}
    assert f"{name}_total" not in ours


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("etcd_network_peer_round_trip_time_seconds", {"To"}),
        ("etcd_network_peer_sent_bytes_total", {"To"}),
        ("etcd_network_peer_received_bytes_total", {"From"}),
        ("etcd_network_peer_sent_failures_total", {"To"}),
        ("etcd_network_peer_received_failures_total", {"From"}),
        ("etcd_network_active_peers", {"Local", "Remote"}),
        ("etcd_network_disconnected_peers_total", {"Local", "Remote"}),
    ],
)
def test_peer_labels_are_capitalised_as_etcds(
    name: str, labels: set[str], ours: dict[str, RawFamily]
) -> None:
    assert ours[name].label_names == labels


# etcd 3.4 label vectors the dump lacks because nothing created a child: no send had
# failed, no snapshot crossed the network, no peer had disconnected (Go's client omits
# vectors without children).
IN_34_BUT_NOT_IN_DUMP = {
    "etcd_network_peer_sent_failures_total",
    "etcd_network_peer_received_failures_total",
    "etcd_network_disconnected_peers_total",
    "etcd_network_snapshot_send_success",
    "etcd_network_snapshot_send_failures",
    "etcd_network_snapshot_send_total_duration_seconds",
    "etcd_network_snapshot_receive_success",
    "etcd_network_snapshot_receive_failures",
    "etcd_network_snapshot_receive_total_duration_seconds",
}


def test_families_absent_from_the_dump_say_where_they_come_from(
    etcd: dict[str, RawFamily],
) -> None:
    """A family etcd 3.4 did not show is a later etcd's (since) or raftmon's own."""
    unexplained = [
        spec.name
        for spec in CATALOG
        if spec.name not in etcd
        and spec.since == "3.4"
        and spec.name not in IN_34_BUT_NOT_IN_DUMP
        and not spec.only_with  # the dump is of a default (--metrics=basic) etcd
    ]
    assert unexplained == []
    assert all(spec.labels for spec in CATALOG if spec.name in IN_34_BUT_NOT_IN_DUMP)


def test_own_families_live_under_raftmon_prefix() -> None:
    foreign = [
        spec.name
        for spec in CATALOG
        if spec.since == "raftmon" and not spec.name.startswith("raftmon_")
    ]
    assert foreign == []
    assert all(spec.since == "raftmon" for spec in CATALOG if spec.name.startswith("raftmon_"))


def test_series_names_cover_histogram_parts_and_plain_families() -> None:
    series = catalog.series_names()
    assert {
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        "etcd_disk_wal_fsync_duration_seconds_sum",
        "etcd_disk_wal_fsync_duration_seconds_count",
        "etcd_server_has_leader",
        "grpc_server_handled_total",
    } <= series
    assert "etcd_disk_wal_fsync_duration_seconds" not in series
    assert catalog.family_names() == {spec.name for spec in CATALOG}
    assert all(spec.buckets for spec in CATALOG if spec.kind is Kind.HISTOGRAM)
    assert not any(spec.buckets for spec in CATALOG if spec.kind is not Kind.HISTOGRAM)


def test_grpc_methods_and_codes_are_etcds(etcd: dict[str, RawFamily], exposition: str) -> None:
    reference = REFERENCE.read_text()
    for family in ("grpc_server_started_total", "grpc_server_handled_total"):
        theirs = {
            line.rsplit(" ", 1)[0]
            for line in reference.splitlines()
            if line.startswith(family + "{")
        }
        mine = {
            line.rsplit(" ", 1)[0]
            for line in exposition.splitlines()
            if line.startswith(family + "{")
        }
        assert mine == theirs, family


def test_markdown_table_has_one_row_per_family_and_left_out_entry() -> None:
    from exporter.__main__ import markdown

    table = markdown()
    assert all(f"| `{spec.name}` |" in table for spec in CATALOG)
    assert all(f"| `{name}` |" in table for name in LEFT_OUT)


def test_etcd_only_names_never_overlap_what_raftmon_exposes() -> None:
    assert catalog.etcd_only_series_names().isdisjoint(catalog.series_names())
    assert "etcd_grpc_proxy_cache_hits_total" in catalog.etcd_only_series_names()
    assert "grpc_server_handling_seconds_bucket" in catalog.series_names()  # raftmon's too
