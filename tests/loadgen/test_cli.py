"""Flag parsing: etcd benchmark spellings, Go-style `--flag=value`, globals on either side."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from collections.abc import Iterator

import pytest

from loadgen.cli import build_parser, config_from_args, go_style_booleans, main, parse_duration
from loadgen.config import THREADED_CLIENTS, LoadConfig, WorkerShare, client_threads
from tests.helpers import free_port
from tests.loadgen.fake_etcd import FakeEtcd


def cfg_of(argv: list[str]) -> LoadConfig:
    return config_from_args(build_parser().parse_args(go_style_booleans(argv)))


def test_endpoints_accept_commas_and_repeats_and_gain_a_scheme() -> None:
    cfg = cfg_of(["--endpoints=a:1,b:2", "--endpoints", "http://c:3/", "put"])
    assert cfg.endpoints == ("http://a:1", "http://b:2", "http://c:3")


def test_global_flags_may_follow_the_workload_name_like_cobra() -> None:
    cfg = cfg_of(["--clients=3", "put", "--conns=2", "--total=50", "--key-size=16"])
    assert (cfg.clients, cfg.conns, cfg.total, cfg.key_size) == (3, 2, 50, 16)


def test_a_global_flag_before_the_workload_is_not_reset_by_the_subcommand() -> None:
    cfg = cfg_of(["--rate=250", "--consistency=s", "range"])
    assert cfg.rate == 250.0
    assert cfg.consistency == "s"


def test_go_style_booleans_and_durations() -> None:
    cfg = cfg_of(["--duration=1m30s", "--timeout=500ms", "put", "--sequential-keys=true"])
    assert cfg.duration == 90.0
    assert cfg.timeout == 0.5
    assert cfg.sequential_keys is True
    assert cfg.total is None  # a duration-bound run
    assert cfg_of(["put", "--sequential-keys=false"]).sequential_keys is False
    assert cfg_of(["put", "--sequential-keys"]).sequential_keys is True


def test_a_bare_boolean_flag_never_swallows_the_workload_name() -> None:
    cfg = cfg_of(["--no-progress", "mixed", "--prefill", "--read-ratio=0.2"])
    assert cfg.workload == "mixed"
    assert cfg.prefill is True
    assert cfg_of(["--target-leader=false", "put"]).target_leader is False
    assert cfg_of(["--target-leader=1", "put"]).target_leader is True


def test_protocol_is_http_unless_grpc_is_asked_for() -> None:
    assert cfg_of(["put"]).protocol == "http"
    assert cfg_of(["put", "--protocol=grpc"]).protocol == "grpc"
    assert cfg_of(["--protocol", "grpc", "lease-keepalive"]).protocol == "grpc"
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        cfg_of(["--protocol=quic", "put"])


def test_a_workers_few_http_clients_run_on_threads_unless_told_otherwise() -> None:
    def on_threads(argv: list[str], clients: int) -> bool:
        share = WorkerShare(index=0, count=1, clients=clients, conns=1)
        return client_threads(cfg_of(argv), share)

    assert on_threads(["put"], 1)
    assert on_threads(["range"], THREADED_CLIENTS)
    assert not on_threads(["put"], THREADED_CLIENTS + 1)
    assert on_threads(["--client-io=threads", "put"], 64)
    assert not on_threads(["--client-io=loop", "put"], 1)
    assert not on_threads(["--protocol=grpc", "put"], 1)  # grpc has no blocking client
    assert not on_threads(["watch"], 1)  # its streams and event matching live on the loop


def test_defaults_follow_etcd_benchmark() -> None:
    cfg = cfg_of(["put"])
    assert (cfg.total, cfg.clients, cfg.conns) == (10_000, 1, 1)
    assert (cfg.key_size, cfg.val_size, cfg.key_space_size) == (8, 8, 1)
    assert cfg.endpoints == ("http://127.0.0.1:2379",)
    assert not cfg.open_loop


def test_workload_specific_flags() -> None:
    assert cfg_of(["txn-put", "--txn-ops=4", "--key-space-size=8"]).txn_ops == 4
    assert cfg_of(["mixed", "--read-ratio=0.9"]).read_ratio == 0.9
    assert cfg_of(["watch", "--watchers=7"]).watchers == 7
    assert cfg_of(["lease-keepalive", "--ttl=15"]).lease_ttl == 15
    ranged = cfg_of(["range", "foo", "fop", "--prefill"])
    assert (ranged.range_key, ranged.range_end, ranged.prefill) == ("foo", "fop", True)


@pytest.mark.parametrize("text", ["", "5x", "s5", "1m-3s"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["--clients=0", "put"],
        ["txn-put", "--txn-ops=3"],  # three distinct keys need a key space of 3
        ["mixed", "--read-ratio=1.5"],
        ["--rate=-1", "put"],
        ["--json=maybe", "put"],
        ["--client-io=threads", "--protocol=grpc", "put"],
        ["--client-io=threads", "watch"],
    ],
)
def test_invalid_configs_exit_2_without_sending(argv: list[str]) -> None:
    assert main(["--no-progress", "--endpoints=127.0.0.1:9", *argv]) == 2


def test_set_up_failure_is_a_clean_exit_1_not_a_traceback() -> None:
    closed = f"--endpoints=127.0.0.1:{free_port()}"
    assert main(["--no-progress", closed, "lease-keepalive"]) == 1
    assert main(["--no-progress", closed, "range", "--prefill", "--key-space-size=3"]) == 1


@pytest.fixture
def restore_loadgen_log_level() -> Iterator[None]:
    logger = logging.getLogger("loadgen")
    level = logger.level
    try:
        yield
    finally:
        logger.setLevel(level)


@pytest.mark.usefixtures("restore_loadgen_log_level")
def test_log_level_info_logs_the_run_start_and_end(
    fake: FakeEtcd, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["--no-progress", "--json", "--log-level=info", f"--endpoints={fake.url}", "put"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--total=20"]) == 0
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("loadgen")]
    assert any(m.startswith("run start workload=put mode=closed") for m in messages), messages
    assert any(m.startswith("run done sent=20 succeeded=20 failed=0") for m in messages)

    caplog.clear()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv[:2], "--log-level=WARNING", *argv[3:], "--total=5"]) == 0
    assert not [r for r in caplog.records if r.name.startswith("loadgen")]


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--log-level=loud", "put"])
    assert exc.value.code == 2
