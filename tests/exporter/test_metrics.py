"""MemberMetrics: hot-path handles are bound once and record what the member reports."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from exporter.exposition import render
from exporter.metrics import MemberMetrics
from tests.exporter.fake_state import PEER_A, PEER_B


def sample(metrics: MemberMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


@pytest.fixture
def metrics() -> MemberMetrics:
    return MemberMetrics(CollectorRegistry(), peer_ids=(PEER_A, PEER_B), process_metrics=False)


@pytest.fixture
def labels_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Records every `.labels(...)` call made from now on (i.e. every child lookup)."""
    calls: list[tuple[str, tuple[str, ...]]] = []
    original = MetricWrapperBase.labels

    def spy(self: MetricWrapperBase, *values: str, **kw: str) -> MetricWrapperBase:
        calls.append((self._name, values))
        return original(self, *values, **kw)

    monkeypatch.setattr(MetricWrapperBase, "labels", spy)
    return calls


def one_request(metrics: MemberMetrics, code: str = "OK") -> None:
    put = metrics.rpcs[("etcdserverpb.KV", "Put")]
    metrics.request_started(put, 100)
    metrics.request_finished(put, metrics.request_duration["Put"], code, 0.004, 60)


def test_hot_path_creates_no_label_children_after_first_use(
    metrics: MemberMetrics, labels_calls: list[tuple[str, tuple[str, ...]]]
) -> None:
    one_request(metrics)  # binds the Put request-duration pair on first use
    metrics.on_rtt(PEER_A, 0.001)
    metrics.on_apply_request("Put", True, 0.0001)
    warmup = len(labels_calls)
    for _ in range(500):
        one_request(metrics)
        one_request(metrics, "Unavailable")
        metrics.on_rtt(PEER_A, 0.001)
        metrics.on_fsync(0.002)
        metrics.on_write(100, 0.0001)
        metrics.on_commit(0.003)
        metrics.on_apply_request("Put", True, 0.0001)
    assert labels_calls[warmup:] == []
    assert warmup == 2 + 2  # request_duration Put ok/failed, apply_duration Put ok/failed


def test_etcds_grpc_series_exist_before_any_request(metrics: MemberMetrics) -> None:
    assert (
        sample(
            metrics,
            "grpc_server_handled_total",
            grpc_code="Unavailable",
            grpc_method="Watch",
            grpc_service="etcdserverpb.Watch",
            grpc_type="bidi_stream",
        )
        == 0
    )
    assert len(metrics.rpcs) == 41
    text = render(metrics.registry).decode()
    assert text.count("\ngrpc_server_handled_total{") == 41 * 17


def test_a_successful_request_counts_like_go_grpc_prometheus(metrics: MemberMetrics) -> None:
    one_request(metrics)
    kv = {"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
    assert sample(metrics, "grpc_server_started_total", **kv) == 1
    assert sample(metrics, "grpc_server_msg_received_total", **kv) == 1
    assert sample(metrics, "grpc_server_msg_sent_total", **kv) == 1
    assert sample(metrics, "grpc_server_handled_total", grpc_code="OK", **kv) == 1
    assert (
        sample(
            metrics, "etcd_server_client_requests_total", client_api_version="unknown", type="unary"
        )
        == 1
    )
    assert sample(metrics, "etcd_network_client_grpc_received_bytes_total") == 100
    assert sample(metrics, "etcd_network_client_grpc_sent_bytes_total") == 60
    assert (
        sample(metrics, "etcd_server_request_duration_seconds_count", type="Put", success="true")
        == 1
    )
    assert (
        sample(
            metrics,
            "etcd_server_request_duration_seconds_bucket",
            type="Put",
            success="true",
            le="0.004",
        )
        == 1
    )


def test_a_failed_request_counts_its_code_and_no_sent_message(metrics: MemberMetrics) -> None:
    one_request(metrics, "Unavailable")
    kv = {"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
    assert sample(metrics, "grpc_server_handled_total", grpc_code="Unavailable", **kv) == 1
    assert sample(metrics, "grpc_server_handled_total", grpc_code="OK", **kv) == 0
    assert sample(metrics, "grpc_server_msg_sent_total", **kv) == 0
    assert (
        sample(metrics, "etcd_server_request_duration_seconds_count", type="Put", success="false")
        == 1
    )


def test_an_unknown_grpc_code_is_counted_as_unknown(metrics: MemberMetrics) -> None:
    one_request(metrics, "NotAGrpcCode")
    kv = {"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
    assert sample(metrics, "grpc_server_handled_total", grpc_code="Unknown", **kv) == 1


def test_streams_count_started_and_handled_for_active_stream_panels(metrics: MemberMetrics) -> None:
    watch = metrics.rpc("etcdserverpb.Watch", "Watch")
    metrics.stream_started(watch)
    metrics.stream_started(watch)
    metrics.stream_finished(watch, "Canceled")
    w = {"grpc_method": "Watch", "grpc_service": "etcdserverpb.Watch", "grpc_type": "bidi_stream"}
    started = sample(metrics, "grpc_server_started_total", **w)
    handled = sum(
        sample(metrics, "grpc_server_handled_total", grpc_code=code, **w)
        for code in ("OK", "Canceled")
    )
    assert started - handled == 1
    assert (
        sample(
            metrics,
            "etcd_server_client_requests_total",
            client_api_version="unknown",
            type="stream",
        )
        == 2
    )


def test_stream_messages_and_their_bytes_are_counted_both_ways(metrics: MemberMetrics) -> None:
    watch = metrics.rpc("etcdserverpb.Watch", "Watch")
    keepalive = metrics.rpc("etcdserverpb.Lease", "LeaseKeepAlive")
    metrics.stream_started(watch)
    metrics.stream_received(watch, 2, 90)  # one chunk completing two requests
    metrics.stream_received(watch, 0, 7)  # part of a third
    for line in (40, 55, 61):
        metrics.stream_sent(watch, line)
    metrics.stream_started(keepalive)
    metrics.stream_received(keepalive, 1, 20)
    metrics.stream_sent(keepalive, 120)
    w = {"grpc_method": "Watch", "grpc_service": "etcdserverpb.Watch", "grpc_type": "bidi_stream"}
    k = {"grpc_method": "LeaseKeepAlive", "grpc_service": "etcdserverpb.Lease"}
    assert sample(metrics, "grpc_server_msg_received_total", **w) == 2
    assert sample(metrics, "grpc_server_msg_sent_total", **w) == 3
    assert sample(metrics, "grpc_server_msg_received_total", grpc_type="bidi_stream", **k) == 1
    assert sample(metrics, "grpc_server_msg_sent_total", grpc_type="bidi_stream", **k) == 1
    assert sample(metrics, "etcd_network_client_grpc_received_bytes_total") == 90 + 7 + 20
    assert sample(metrics, "etcd_network_client_grpc_sent_bytes_total") == 40 + 55 + 61 + 120


def test_stream_messages_create_no_label_children(
    metrics: MemberMetrics, labels_calls: list[tuple[str, tuple[str, ...]]]
) -> None:
    watch = metrics.rpc("etcdserverpb.Watch", "Watch")
    for _ in range(200):
        metrics.stream_received(watch, 1, 50)
        metrics.stream_sent(watch, 80)
    assert labels_calls == []


def test_request_types_outside_the_catalog_are_refused(metrics: MemberMetrics) -> None:
    with pytest.raises(KeyError, match="REQUEST_TYPES"):
        metrics.request_duration["Putt"]


def test_wal_hooks_feed_fsync_histogram_and_byte_gauge(metrics: MemberMetrics) -> None:
    metrics.on_fsync(0.031)
    metrics.observe_wal_fsync(0.029)
    metrics.on_write(4096, 0.0001)
    metrics.on_write(1000, 0.0001)
    assert sample(metrics, "etcd_disk_wal_fsync_duration_seconds_count") == 2
    assert sample(metrics, "etcd_disk_wal_fsync_duration_seconds_sum") == pytest.approx(0.060)
    assert sample(metrics, "etcd_disk_wal_fsync_duration_seconds_bucket", le="0.032") == 2
    assert sample(metrics, "etcd_disk_wal_fsync_duration_seconds_bucket", le="0.016") == 0
    assert sample(metrics, "etcd_disk_wal_write_bytes_total") == 5096


def test_a_single_transaction_compaction_is_also_its_pause_in_milliseconds(
    metrics: MemberMetrics,
) -> None:
    metrics.on_compaction(0.25, 1000)  # node/mvcc's BackendObserver signature
    total = "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_sum"
    pause = "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_sum"
    assert sample(metrics, total) == 250
    assert sample(metrics, pause) == 250


def test_a_batched_compaction_reports_its_pauses_separately(metrics: MemberMetrics) -> None:
    metrics.on_compaction_pause(0.003)
    metrics.on_compaction_pause(0.004)
    metrics.on_compaction(0.25, batched=True)
    pause = "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds"
    assert sample(metrics, pause + "_count") == 2
    assert sample(metrics, pause + "_sum") == pytest.approx(7)


def test_rtt_of_a_new_peer_gets_its_series(metrics: MemberMetrics) -> None:
    newcomer = 0xABC
    metrics.on_rtt(newcomer, 0.0005)
    metrics.on_rtt(newcomer, 0.0007)
    assert sample(metrics, "etcd_network_peer_round_trip_time_seconds_count", To="abc") == 2
    assert sample(metrics, "etcd_network_peer_round_trip_time_seconds_count", To=f"{PEER_B:x}") == 0


def test_snapshot_transfers_count_success_and_failure_per_peer(metrics: MemberMetrics) -> None:
    metrics.on_snapshot_sent(PEER_A, 2.0, ok=True)
    metrics.on_snapshot_sent(PEER_A, 9.0, ok=False)
    metrics.on_snapshot_received(PEER_B, 1.0, ok=True)
    text = render(metrics.registry).decode()
    assert f'etcd_network_snapshot_send_success{{To="{PEER_A:x}"}} 1.0' in text
    assert f'etcd_network_snapshot_send_failures{{To="{PEER_A:x}"}} 1.0' in text
    assert f'etcd_network_snapshot_receive_success{{From="{PEER_B:x}"}} 1.0' in text
    # As etcd: only successful transfers are timed.
    assert (
        sample(metrics, "etcd_network_snapshot_send_total_duration_seconds_sum", To=f"{PEER_A:x}")
        == 2.0
    )


def test_bare_counters_count_health_checks(metrics: MemberMetrics) -> None:
    metrics.on_health(True)
    metrics.on_health(True)
    metrics.on_health(False)
    text = render(metrics.registry).decode()
    assert "\netcd_server_health_success 2.0\n" in text
    assert "\netcd_server_health_failures 1.0\n" in text


def test_two_members_in_one_process_do_not_share_values() -> None:
    first = MemberMetrics(CollectorRegistry(), process_metrics=False)
    second = MemberMetrics(CollectorRegistry(), process_metrics=False)
    first.on_fsync(0.001)
    assert sample(first, "etcd_disk_wal_fsync_duration_seconds_count") == 1
    assert sample(second, "etcd_disk_wal_fsync_duration_seconds_count") == 0


def test_python_version_stands_in_for_go_version(metrics: MemberMetrics) -> None:
    import platform

    assert (
        sample(
            metrics,
            "raftmon_server_python_version",
            server_python_version=platform.python_version(),
        )
        == 1
    )


def test_basic_metrics_time_no_call(metrics: MemberMetrics) -> None:
    """etcd's default: no method is timed, so no front end reads a clock for it."""
    assert not any(rpc.timed for rpc in metrics.rpcs.values())
    assert not metrics.rpc("etcdserverpb.KV", "NotInEtcd").timed
    assert "grpc_server_handling_seconds" not in render(metrics.registry).decode()


def test_extensive_times_every_method_from_the_start_and_on_demand() -> None:
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False, extensive=True)
    assert all(rpc.timed for rpc in metrics.rpcs.values())
    assert metrics.rpc("v3lockpb.Lock", "Lock").timed
    name = "grpc_server_handling_seconds_count"
    labels = {"grpc_method": "Lock", "grpc_service": "v3lockpb.Lock", "grpc_type": "unary"}
    assert sample(metrics, name, **labels) == 0


def test_handling_seconds_land_in_inclusive_cumulative_buckets() -> None:
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False, extensive=True)
    watch = metrics.rpc("etcdserverpb.Watch", "Watch", "bidi_stream")
    for seconds in (0.001, 0.005, 0.0051, 0.3, 10.0, 42.0):
        metrics.call_handled(watch, seconds)
    labels = {"grpc_method": "Watch", "grpc_service": "etcdserverpb.Watch"}
    labels["grpc_type"] = "bidi_stream"

    def bucket(le: str) -> float:
        return sample(metrics, "grpc_server_handling_seconds_bucket", le=le, **labels)

    bounds = ("0.005", "0.01", "0.25", "0.5", "10.0", "+Inf")
    assert [bucket(le) for le in bounds] == [2, 3, 3, 4, 5, 6]  # 0.005 itself is <= 0.005
    assert sample(metrics, "grpc_server_handling_seconds_count", **labels) == 6
    assert sample(metrics, "grpc_server_handling_seconds_sum", **labels) == pytest.approx(52.3111)
