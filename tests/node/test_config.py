"""Member flags keep etcd's names and meanings; ETCD_* environment works as in etcd."""

from __future__ import annotations

import pytest

from node.config import ConfigError, parse_config, parse_duration

CLUSTER = "m1=http://127.0.0.1:7001,m2=http://127.0.0.1:7002,m3=http://127.0.0.1:7003"


def test_defaults_match_etcd() -> None:
    cfg = parse_config([])
    assert cfg.name == "default"
    assert cfg.data_dir == "default.etcd"
    assert cfg.heartbeat_interval_ms == 100
    assert cfg.election_timeout_ms == 1000
    assert cfg.election_ticks == 10
    assert cfg.max_request_bytes == 1572864
    assert cfg.quota_backend_bytes == 2 * 1024**3
    assert cfg.snapshot_count == 100_000
    assert cfg.backend_batch_interval_seconds == pytest.approx(0.1)
    assert cfg.backend_batch_limit == 10_000


def test_flags_build_a_three_member_config() -> None:
    cfg = parse_config(
        ["--name=m2", "--initial-cluster", CLUSTER, "--listen-client-urls=http://127.0.0.1:8002"]
    )
    assert cfg.initial_advertise_peer_urls == ("http://127.0.0.1:7002",)
    assert cfg.advertise_client_urls == ("http://127.0.0.1:8002",)
    assert len(cfg.members) == 3
    assert cfg.member_id in {m.member_id for m in cfg.members}
    assert cfg.data_dir == "m2.etcd"


def test_ids_are_stable_and_distinct() -> None:
    a = parse_config(["--name=m1", "--initial-cluster", CLUSTER])
    b = parse_config(["--name=m2", "--initial-cluster", CLUSTER])
    assert a.cluster_id == b.cluster_id
    assert a.member_id != b.member_id
    assert parse_config(["--name=m1", "--initial-cluster", CLUSTER]).member_id == a.member_id
    other = parse_config(["--name=m1", "--initial-cluster", CLUSTER, "--initial-cluster-token=x"])
    assert other.cluster_id != a.cluster_id


def test_environment_sets_flags_and_flags_win() -> None:
    env = {"ETCD_NAME": "m3", "ETCD_INITIAL_CLUSTER": CLUSTER, "ETCD_SNAPSHOT_COUNT": "50"}
    cfg = parse_config([], env)
    assert cfg.name == "m3"
    assert cfg.snapshot_count == 50
    assert parse_config(["--snapshot-count=7"], env).snapshot_count == 7


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--name=zz", "--initial-cluster", CLUSTER], "not in --initial-cluster"),
        (["--heartbeat-interval=100", "--election-timeout=200"], "at least 5 times"),
        (["--initial-cluster-state=maybe"], "new' or 'existing"),
        (["--initial-cluster=m1"], "want name=url"),
        (["--listen-client-urls=localhost"], "invalid URL"),
        (["--experimental-wal-fsync-delay=fast"], "invalid duration"),
        (["--backend-batch-limit=0"], "--backend-batch-limit must be > 0"),
        (["--backend-batch-interval=soon"], "invalid duration"),
    ],
)
def test_bad_flags_are_rejected_with_a_precise_message(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config(argv)


def test_backend_batch_flags_are_etcds() -> None:
    cfg = parse_config(["--backend-batch-interval=10ms", "--backend-batch-limit=500"])
    assert cfg.backend_batch_interval_seconds == pytest.approx(0.01)
    assert cfg.backend_batch_limit == 500
    env = {"ETCD_BACKEND_BATCH_INTERVAL": "0s"}  # 0: every apply commits at once
    assert parse_config([], env).backend_batch_interval_seconds == 0.0


def test_durations_parse_like_go() -> None:
    assert parse_duration("30ms") == pytest.approx(0.03)
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2") == 2
