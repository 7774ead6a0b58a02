"""Member flags keep etcd's names and meanings; ETCD_* environment works as in etcd."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, parse_config
from node.duration import parse_duration

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
    assert cfg.metrics == "basic"


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
        (["--metrics=extensiv"], "--metrics must be 'basic' or 'extensive', not 'extensiv'"),
    ],
)
def test_bad_flags_are_rejected_with_a_precise_message(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config(argv)


def test_metrics_level_is_etcds_flag_and_variable() -> None:
    assert parse_config(["--metrics=extensive"]).metrics == "extensive"
    assert parse_config(["--metrics", "basic"]).metrics == "basic"
    assert parse_config([], {"ETCD_METRICS": "extensive"}).metrics == "extensive"


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


# ---- TLS flags (etcd's names and meanings) --------------------------------------------


def test_https_client_url_without_cert_is_refused_naming_the_url() -> None:
    with pytest.raises(ConfigError, match=r"cannot listen on TLS for https://127\.0\.0\.1:8443"):
        parse_config(["--listen-client-urls=https://127.0.0.1:8443"], {})


def test_https_peer_url_without_peer_cert_is_refused_naming_the_peer_flags() -> None:
    url = "https://127.0.0.1:8444"
    with pytest.raises(ConfigError, match="--peer-cert-file and --peer-key-file"):
        parse_config([f"--listen-peer-urls={url}", f"--initial-advertise-peer-urls={url}"], {})


def test_https_metrics_url_needs_the_client_cert() -> None:
    with pytest.raises(ConfigError, match="KeyFile and CertFile are not presented"):
        parse_config(["--listen-metrics-urls=https://127.0.0.1:8445"], {})


def test_http_urls_with_certificates_are_allowed_as_etcd_does(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    cert.write_text("x")
    key.write_text("x")
    cfg = parse_config([f"--cert-file={cert}", f"--key-file={key}", "--client-cert-auth"], {})
    assert cfg.listen_client_urls == ("http://localhost:2379",)
    assert cfg.client_tls.cert_file == str(cert)
    assert cfg.client_tls.requires_client_cert


def test_a_trusted_ca_alone_requires_client_certificates_as_in_etcd() -> None:
    cfg = parse_config([], {"ETCD_TRUSTED_CA_FILE": "/etc/hostname"})
    assert not cfg.client_cert_auth
    assert cfg.client_tls.requires_client_cert
    assert not cfg.peer_tls.requires_client_cert


def test_unknown_cipher_suite_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unexpected TLS cipher suite 'TLS_NOPE'"):
        parse_config(["--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOPE"], {})


def test_cipher_suites_come_from_the_environment_in_gos_names() -> None:
    env = {
        "ETCD_CIPHER_SUITES": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
    }
    cfg = parse_config([], env)
    assert cfg.cipher_suites == (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    )
    assert cfg.peer_client_cert_auth


def test_cert_without_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="--peer-cert-file and --peer-key-file go together"):
        parse_config(["--peer-cert-file=/etc/hostname"], {})


def test_unreadable_certificate_file_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"--trusted-ca-file '/nonexistent/ca\.crt'"):
        parse_config(["--trusted-ca-file=/nonexistent/ca.crt"], {})
