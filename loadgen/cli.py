"""`raftmon load`: etcd benchmark-compatible flags, one subcommand per workload.

    raftmon load --endpoints=127.0.0.1:2379 --conns=10 --clients=100 \\
        put --total=100000 --key-size=8 --val-size=256 --key-space-size=1000

Global flags may come before or after the workload name (cobra allows both, so
scripts written for etcd's `benchmark` keep working). `--flag=value` works as with
Go's flag package, booleans included (`--sequential-keys=true`). Durations take
Go's spelling too: `--duration=30s`, `--timeout=500ms`, or plain seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from loadgen.client import normalize_endpoint
from loadgen.config import (
    CLIENT_IO,
    DEFAULT_TOTAL,
    PROTOCOLS,
    THREADED_CLIENTS,
    LoadConfig,
    effective_workers,
)
from loadgen.connect import leader_endpoint, open_conn
from loadgen.errors import EtcdError
from loadgen.html_report import render_html
from loadgen.keyspace import KeySpace
from loadgen.metrics import LoadMetrics, MergedCollector, serve
from loadgen.progress import ProgressDisplay
from loadgen.report import Report, merge_results, render_csv, render_json, render_text
from loadgen.workers import (
    WorkerFailed,
    configure_logging,
    run_async,
    run_in_process,
    run_processes,
)

log = logging.getLogger(__name__)

_DURATION_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"
_DURATION = re.compile(f"(?:{_DURATION_PART})+")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from `30`, `2.5`, `30s`, `1m30s` or `500ms` (Go's time.ParseDuration units)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    return sum(float(n) * _UNIT[unit] for n, unit in re.findall(_DURATION_PART, text))


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "t", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


BOOLEAN_FLAGS = ("--target-leader", "--json", "--no-progress", "--sequential-keys", "--prefill")


def go_style_booleans(argv: list[str]) -> list[str]:
    """Accept Go's `--flag=true|false` for boolean flags (argparse only knows `--flag`).

    A bare boolean flag never takes the next word as its value, as in Go, so
    `--no-progress put` still reads `put` as the workload.
    """
    out: list[str] = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name in BOOLEAN_FLAGS:
            if parse_bool(value):
                out.append(name)
            continue  # false: the flag's default
        out.append(arg)
    return out


def _flag(parser: argparse.ArgumentParser, name: str, suppress: bool, **kw: Any) -> None:
    """Add a flag; on subparsers its default is SUPPRESS so it never hides the global value."""
    if kw.pop("boolean", False):
        kw["action"] = "store_true"
    if suppress:
        kw["default"] = argparse.SUPPRESS
    parser.add_argument(name, **kw)


def _global_flags(p: argparse.ArgumentParser, suppress: bool) -> None:
    f = _flag
    f(
        p,
        "--endpoints",
        suppress,
        action="append",
        default=None,
        metavar="URLS",
        help="comma-separated client URLs, repeatable; connections are spread over them "
        "(default 127.0.0.1:2379)",
    )
    f(
        p,
        "--protocol",
        suppress,
        choices=PROTOCOLS,
        default="http",
        help="http = etcd's JSON gateway, grpc = etcd's native API as etcd's benchmark "
        "sends it (default http)",
    )
    f(
        p,
        "--client-io",
        suppress,
        choices=CLIENT_IO,
        default="auto",
        help="how clients wait for answers (http): threads = a thread each with blocking "
        "sockets, loop = tasks of one event loop; auto = threads for at most "
        f"{THREADED_CLIENTS} clients per worker (default auto)",
    )
    f(
        p,
        "--conns",
        suppress,
        type=int,
        default=1,
        help="connections: aiohttp sessions (http) or gRPC channels (grpc) (default 1)",
    )
    f(p, "--clients", suppress, type=int, default=1, help="concurrent clients (default 1)")
    f(
        p,
        "--total",
        suppress,
        type=int,
        default=None,
        help="requests to send (default 10000 unless --duration)",
    )
    f(
        p,
        "--duration",
        suppress,
        type=parse_duration,
        default=None,
        help="run for this long instead of --total (e.g. 30s)",
    )
    f(
        p,
        "--rate",
        suppress,
        type=float,
        default=0.0,
        help="open loop: requests/s over the whole run (default 0 = closed loop)",
    )
    f(
        p,
        "--consistency",
        suppress,
        choices=("l", "s"),
        default="l",
        help="reads: l = linearizable, s = serializable (default l)",
    )
    f(
        p,
        "--target-leader",
        suppress,
        boolean=True,
        help="send only to the endpoint whose member is the leader",
    )
    f(
        p,
        "--timeout",
        suppress,
        type=parse_duration,
        default=5.0,
        help="per-request timeout (default 5s)",
    )
    f(
        p,
        "--workers",
        suppress,
        type=int,
        default=1,
        help="worker processes sharing clients and rate (default 1)",
    )
    # etcd benchmark's TLS flags; dest names differ from `range KEY`'s positional `key`
    f(p, "--cacert", suppress, dest="tls_cacert", default=None, help="CA that verifies https")
    f(p, "--cert", suppress, dest="tls_cert", default=None, help="client certificate for https")
    f(p, "--key", suppress, dest="tls_key", default=None, help="key of --cert")
    f(p, "--json", suppress, boolean=True, help="print the report as JSON on stdout")
    f(p, "--csv", suppress, default=None, metavar="PATH", help="write the per-second CSV")
    f(p, "--html", suppress, default=None, metavar="PATH", help="write the HTML report")
    f(
        p,
        "--report-dir",
        suppress,
        default=None,
        metavar="DIR",
        help="write report.txt, report.json, timeseries.csv and report.html there",
    )
    f(
        p,
        "--metrics-port",
        suppress,
        type=int,
        default=0,
        help="serve the generator's own Prometheus metrics on this port (0 = off)",
    )
    f(p, "--metrics-host", suppress, default="127.0.0.1", help="address for --metrics-port")
    f(p, "--no-progress", suppress, boolean=True, help="no live progress bar")
    f(p, "--seed", suppress, type=int, default=1, help="seed of random key choice (default 1)")
    f(
        p,
        "--log-level",
        suppress,
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="WARNING",
        help="stderr logging: INFO adds run start/end, DEBUG every failed request "
        "(default WARNING)",
    )


def _key_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-size", type=int, default=8, help="key size in bytes (default 8)")
    p.add_argument("--val-size", type=int, default=8, help="value size in bytes (default 8)")
    p.add_argument(
        "--key-space-size", type=int, default=1, help="number of distinct keys (default 1)"
    )
    p.add_argument(
        "--sequential-keys",
        action="store_true",
        help="walk keys in order instead of at random",
    )
    p.add_argument("--key-prefix", default="", help="prefix of every key (default none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftmon load",
        description="Generate load against raftmon or etcd 3.4+ over the v3 HTTP/JSON "
        "gateway or gRPC (--protocol).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="workload", required=True, metavar="WORKLOAD")

    def add(
        name: str, text: str, keys: bool = True, prefill: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        _global_flags(p, suppress=True)
        if keys:
            _key_flags(p)
        if prefill:  # for the workloads that read keys
            p.add_argument(
                "--prefill",
                action="store_true",
                help="put every key of the key space once before the run",
            )
        return p

    add("put", "put keys of the key space")
    p = add("range", "range reads: keys of the key space, or `range KEY [END]`", prefill=True)
    p.add_argument("key", nargs="?", default=None, help="fixed key to range over")
    p.add_argument("end", nargs="?", default=None, help="range end (exclusive)")
    p = add("txn-put", "transactions of --txn-ops puts")
    p.add_argument("--txn-ops", type=int, default=1, help="puts per transaction (default 1)")
    p = add(
        "mixed", "reads and writes: range with probability --read-ratio, else put", prefill=True
    )
    p.add_argument("--read-ratio", type=float, default=0.5, help="share of reads (default 0.5)")
    p = add("watch", "puts while watchers stream them; event latency = put ack -> event")
    p.add_argument("--watchers", type=int, default=10, help="watch streams (default 10)")
    p = add("lease-keepalive", "each client keeps a lease alive", keys=False)
    p.add_argument("--ttl", type=int, default=60, help="lease TTL in seconds (default 60)")
    return parser


def split_endpoints(values: list[str] | None) -> tuple[str, ...]:
    raw = values or ["127.0.0.1:2379"]
    return tuple(normalize_endpoint(e) for v in raw for e in v.split(",") if e.strip())


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    g = getattr
    return LoadConfig(
        workload=args.workload,
        endpoints=split_endpoints(args.endpoints),
        protocol=args.protocol,
        client_io=args.client_io,
        conns=args.conns,
        clients=args.clients,
        total=DEFAULT_TOTAL if args.total is None and args.duration is None else args.total,
        duration=args.duration,
        rate=args.rate,
        consistency=args.consistency,
        target_leader=bool(args.target_leader),
        key_size=g(args, "key_size", 8),
        val_size=g(args, "val_size", 8),
        key_space_size=g(args, "key_space_size", 1),
        sequential_keys=bool(g(args, "sequential_keys", False)),
        key_prefix=g(args, "key_prefix", ""),
        range_key=g(args, "key", None),
        range_end=g(args, "end", None),
        txn_ops=g(args, "txn_ops", 1),
        read_ratio=g(args, "read_ratio", 0.5),
        watchers=g(args, "watchers", 10),
        lease_ttl=g(args, "ttl", 60),
        prefill=bool(g(args, "prefill", False)),
        timeout=args.timeout,
        seed=args.seed,
        workers=args.workers,
        cacert=args.tls_cacert or "",
        cert=args.tls_cert or "",
        key=args.tls_key or "",
    )


async def prepare(cfg: LoadConfig) -> LoadConfig:
    """Before the clock starts: pick the leader's endpoint, prefill the key space."""
    keys = KeySpace(cfg)
    if cfg.target_leader:
        leader = await leader_endpoint(cfg, keys)
        if leader is None:
            raise EtcdError("no_leader", "--target-leader: no endpoint reports being the leader")
        log.info("target leader endpoint=%s", leader)
        cfg = dataclasses.replace(cfg, endpoints=(leader,))
    if cfg.prefill:
        log.info("prefill keys=%d", cfg.key_space_size)
        conn = open_conn(cfg, cfg.endpoints[0], keys, 32)
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await conn.put(i)

        try:
            async with asyncio.TaskGroup() as group:
                for i in range(cfg.key_space_size):
                    group.create_task(one(i))
        except* EtcdError as group_error:
            first = group_error.exceptions[0]
            raise EtcdError("other", f"--prefill failed: {first}") from first
        finally:
            await conn.close()
    return cfg


def write_reports(report: Report, args: argparse.Namespace) -> list[Path]:
    """Write the files the flags ask for; returns their paths."""
    written: list[Path] = []

    def write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    if args.csv:
        write(Path(args.csv), render_csv(report))
    if args.html:
        write(Path(args.html), render_html(report))
    if args.report_dir:
        d = Path(args.report_dir)
        write(d / "report.txt", render_text(report))
        write(d / "report.json", render_json(report))
        write(d / "timeseries.csv", render_csv(report))
        write(d / "report.html", render_html(report))
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point of `raftmon load`; returns the process exit code."""
    try:
        words = go_style_booleans(sys.argv[1:] if argv is None else argv)
    except argparse.ArgumentTypeError as exc:
        print(f"raftmon load: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(words)
    log_level = getattr(logging, args.log_level)
    configure_logging(log_level)
    cfg = config_from_args(args)
    try:
        cfg.validate()
    except ValueError as exc:
        print(f"raftmon load: {exc}", file=sys.stderr)
        return 2
    if cfg.workers > 1 and effective_workers(cfg) != cfg.workers:
        print(
            f"raftmon load: using {effective_workers(cfg)} worker(s) "
            "(no more than --clients; watch runs in one)",
            file=sys.stderr,
        )
    try:
        cfg = run_async(prepare(cfg))
    except EtcdError as exc:
        print(f"raftmon load: set-up failed: {exc}", file=sys.stderr)
        return 1

    server = None
    metrics: LoadMetrics | None = None
    merged: MergedCollector | None = None
    multi = effective_workers(cfg) > 1
    if args.metrics_port:
        if multi:
            merged = MergedCollector()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(merged)
        else:
            metrics = LoadMetrics()
            registry = metrics.registry
        server = serve(registry, args.metrics_port, args.metrics_host)
    log.info(
        "run start workload=%s mode=%s protocol=%s rate=%g endpoints=%s conns=%d clients=%d "
        "workers=%d",
        cfg.workload,
        "open" if cfg.open_loop else "closed",
        cfg.protocol,
        cfg.rate,
        ",".join(cfg.endpoints),
        cfg.conns,
        cfg.clients,
        effective_workers(cfg),
    )
    display = ProgressDisplay(
        enabled=not args.no_progress and not os.environ.get("CI"),
        workload=cfg.workload,
        planned=cfg.planned_total,
        duration=cfg.duration,
    )
    try:
        with display:
            if multi:
                results = run_processes(cfg, display.update, merged, log_level)
            else:
                results = run_in_process(cfg, display.update, metrics)
    except WorkerFailed as exc:
        print(f"raftmon load: {exc}", file=sys.stderr)
        return 1
    except EtcdError as exc:  # set-up (leases, watchers) failed before the clock started
        print(f"raftmon load: set-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    report = merge_results(cfg, results)
    log.info(
        "run done sent=%d succeeded=%d failed=%d unsent=%d elapsed=%.3fs",
        report.sent,
        report.overall.ok,
        report.error_total,
        report.unsent,
        report.elapsed,
    )
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    for path in write_reports(report, args):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
