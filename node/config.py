"""Member configuration: etcd's flag names and ETCD_* environment -> one frozen dataclass.

Flags keep etcd's spelling and meaning so an operator's muscle memory (and
existing scripts) carry over; every flag can also be set as ETCD_<FLAG> in the
environment, as etcd allows. A flag given on the command line wins over the
environment. Member and cluster ids are derived from the peer URLs and the
cluster token the way etcd derives them (a hash), so they are stable across
restarts without being stored anywhere else.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from node.duration import parse_duration
from node.tls import TLSInfo, openssl_ciphers

MIB = 1024 * 1024
DEFAULT_QUOTA_BYTES = 2 * 1024 * MIB  # etcd's default backend quota: 2 GiB
DEFAULT_MAX_REQUEST_BYTES = int(1.5 * MIB)  # etcd's --max-request-bytes default
DEFAULT_SNAPSHOT_COUNT = 100_000  # etcd 3.4's --snapshot-count default
SNAPSHOT_CATCHUP_ENTRIES = 5_000  # entries kept after a snapshot so slow followers avoid one
ETCD_VERSION = "3.4.23"  # the etcd API version raftmon answers as (/version, status)
CLUSTER_VERSION = "3.4.0"
METRICS_LEVELS = ("basic", "extensive")  # etcd's --metrics values


class ConfigError(ValueError):
    """A flag or environment value that cannot be used; the message says which and why."""


def new_member_id(peer_urls: tuple[str, ...], token: str, now_seconds: int) -> int:
    """The id `member add` gives a new member: its peer URLs, the cluster token and the
    time, hashed as etcd's NewMember does, so re-adding the same URLs gets a new id."""
    return _id_from(*sorted(peer_urls), token, str(now_seconds))


def _id_from(*parts: str) -> int:
    """A nonzero 64-bit id from a SHA-1 of the parts (etcd hashes peer URLs + token)."""
    digest = hashlib.sha1("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def _split_urls(value: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise ConfigError(f"invalid URL {url!r}: want scheme://host:port")
    return urls


def parse_initial_cluster(value: str) -> dict[str, tuple[str, ...]]:
    """ "m1=http://a:2380,m2=http://b:2380" -> {"m1": (...), "m2": (...)}; a name may repeat."""
    cluster: dict[str, list[str]] = {}
    for item in (p.strip() for p in value.split(",") if p.strip()):
        name, sep, url = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"invalid --initial-cluster entry {item!r}: want name=url")
        cluster.setdefault(name, []).extend(_split_urls(url))
    if not cluster:
        raise ConfigError("--initial-cluster is empty")
    return {name: tuple(urls) for name, urls in cluster.items()}


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One member as the initial cluster names it."""

    name: str
    member_id: int
    peer_urls: tuple[str, ...]


# What each side of TLS has a flag of its own for (MemberConfig's cert_file, peer_cert_file, ...).
_TLS_SIDE_FIELDS = ("cert_file", "key_file", "trusted_ca_file", "client_cert_auth")


@dataclass(frozen=True, kw_only=True)
class MemberConfig:
    """Everything a member needs to start, validated."""

    name: str = "default"
    data_dir: str = "default.etcd"
    listen_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    advertise_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    listen_peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    initial_advertise_peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    initial_cluster: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"default": ("http://localhost:2380",)}
    )
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_count: int = DEFAULT_SNAPSHOT_COUNT
    quota_backend_bytes: int = DEFAULT_QUOTA_BYTES
    auto_compaction_mode: str = "periodic"
    auto_compaction_retention: str = "0"
    metrics: str = "basic"  # etcd's --metrics: basic or extensive (adds handling histograms)
    listen_metrics_urls: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_txn_ops: int = 128
    backend_batch_interval_seconds: float = 0.1  # etcd's --backend-batch-interval default
    backend_batch_limit: int = 10_000  # etcd's --backend-batch-limit default
    wal_fsync_delay_seconds: float = 0.0
    wal_segment_bytes: int = 64 * MIB
    snapshot_catchup_entries: int = SNAPSHOT_CATCHUP_ENTRIES
    initial_corrupt_check: bool = False  # etcd 3.4: off unless asked
    corrupt_check_time_seconds: float = 0.0  # 0: the periodic check is off, as etcd's default
    watch_progress_notify_interval_seconds: float = 600.0  # etcd's default, 10m
    # raftmon only: how often the peer RTT histogram observes the smoothed RTT while the
    # peer is healthy (etcd 3.4 fixes it at 30 s); the compressed-time lab shortens it.
    peer_rtt_monitor_interval_seconds: float = 30.0
    enable_fault_injection: bool = False
    log_level: str = "info"
    # TLS, etcd's flags: the client side also serves https --listen-metrics-urls
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    peer_cert_file: str = ""
    peer_key_file: str = ""
    peer_trusted_ca_file: str = ""
    peer_client_cert_auth: bool = False
    cipher_suites: tuple[str, ...] = ()  # Go names; empty = OpenSSL's defaults
    cors: tuple[str, ...] = ("*",)  # origins allowed by CORS; "*" or empty: every origin
    strict_reconfig_check: bool = True  # etcd's default: refuse changes that risk quorum
    # etcd's default: once the peers answer at start, advance the election ticks
    initial_election_tick_advance: bool = True
    # Who this member is when that is not what --initial-cluster hashes to: a member
    # added at run time (its id came from `member add`) or restarted from its WAL.
    # Set at start-up (node/server/identity.py), never by a flag.
    known_member_id: int = 0
    known_cluster_id: int = 0
    # --initial-cluster-state existing: the members the running cluster reported.
    existing_members: tuple[MemberSpec, ...] = ()

    # ---- derived values -------------------------------------------------
    @functools.cached_property
    def members(self) -> tuple[MemberSpec, ...]:
        """The initial cluster, ordered by member id, with etcd-style hashed ids (or, for a
        member joining a running cluster, the members that cluster reported).

        Cached: the ids are SHA-1 hashes of every member's peer URLs, and `member_id`
        (read on hot paths, e.g. each proposal's) derives from this. The fields it reads
        are frozen, and `dataclasses.replace` builds a new config with its own cache."""
        if self.existing_members:
            return self.existing_members
        specs = [
            MemberSpec(name, _id_from(*sorted(urls), self.initial_cluster_token), urls)
            for name, urls in self.initial_cluster.items()
        ]
        return tuple(sorted(specs, key=lambda s: s.member_id))

    @property
    def member_id(self) -> int:
        if self.known_member_id:
            return self.known_member_id
        for spec in self.members:
            if spec.name == self.name:
                return spec.member_id
        raise ConfigError(f"--name {self.name!r} is not in --initial-cluster")

    @property
    def cluster_id(self) -> int:
        if self.known_cluster_id:
            return self.known_cluster_id
        return _id_from(*(f"{s.member_id:x}" for s in self.members), self.initial_cluster_token)

    @property
    def tick_seconds(self) -> float:
        return self.heartbeat_interval_ms / 1000.0

    @property
    def election_ticks(self) -> int:
        return max(2, round(self.election_timeout_ms / self.heartbeat_interval_ms))

    @property
    def client_tls(self) -> TLSInfo:
        """Client URLs and metrics URLs (etcd's ClientTLSInfo)."""
        return self._tls_side("")

    @property
    def peer_tls(self) -> TLSInfo:
        """Peer URLs, both the listener and every dial to another member (etcd's PeerTLSInfo)."""
        return self._tls_side("peer_")

    def _tls_side(self, prefix: str) -> TLSInfo:
        """One side's files and switch: etcd names the peer flags as the client ones, prefixed.

        The cipher suites are one flag for both sides.
        """
        side: dict[str, Any] = {name: getattr(self, prefix + name) for name in _TLS_SIDE_FIELDS}
        return TLSInfo(**side, cipher_suites=self.cipher_suites)

    @property
    def request_timeout_seconds(self) -> float:
        """etcd's request timeout: 5 s plus two election timeouts."""
        return 5.0 + 2 * self.election_timeout_ms / 1000.0

    def validate(self) -> None:
        """Mirror etcd's start-up checks; raise ConfigError with a precise message."""
        if not self.name:
            raise ConfigError("--name must not be empty")
        _ = self.member_id  # raises when the name is missing from --initial-cluster
        own = tuple(sorted(self.initial_cluster[self.name]))
        if tuple(sorted(self.initial_advertise_peer_urls)) != own:
            raise ConfigError(
                f"--initial-advertise-peer-urls {','.join(self.initial_advertise_peer_urls)} "
                f"do not match --initial-cluster entry {self.name}={','.join(own)}"
            )
        if self.initial_cluster_state not in ("new", "existing"):
            raise ConfigError("--initial-cluster-state must be 'new' or 'existing'")
        if self.heartbeat_interval_ms <= 0:
            raise ConfigError("--heartbeat-interval must be > 0")
        if self.election_timeout_ms < 5 * self.heartbeat_interval_ms:
            raise ConfigError(
                f"--election-timeout[{self.election_timeout_ms}ms] should be at least "
                f"5 times --heartbeat-interval[{self.heartbeat_interval_ms}ms]"
            )
        if self.snapshot_count <= 0:
            raise ConfigError("--snapshot-count must be > 0")
        if self.quota_backend_bytes <= 0:
            raise ConfigError("--quota-backend-bytes must be > 0")
        if self.auto_compaction_mode not in ("periodic", "revision"):
            raise ConfigError("--auto-compaction-mode must be 'periodic' or 'revision'")
        if self.backend_batch_interval_seconds < 0:
            raise ConfigError("--backend-batch-interval must not be negative")
        if self.backend_batch_limit <= 0:
            raise ConfigError("--backend-batch-limit must be > 0")
        if not 0.0 <= self.wal_fsync_delay_seconds <= 60.0:
            raise ConfigError("--experimental-wal-fsync-delay must be between 0 and 60s")
        if self.corrupt_check_time_seconds < 0:
            raise ConfigError("--experimental-corrupt-check-time must not be negative")
        if self.max_request_bytes <= 0:
            raise ConfigError("--max-request-bytes must be > 0")
        if self.metrics not in METRICS_LEVELS:
            # NB: etcd 3.4 takes any other word for basic; a typo would silently drop
            # the histograms an alert needs, so raftmon refuses it.
            raise ConfigError(f"--metrics must be 'basic' or 'extensive', not {self.metrics!r}")
        if self.watch_progress_notify_interval_seconds <= 0:
            raise ConfigError("--experimental-watch-progress-notify-interval must be > 0")
        if not 0.0 < self.peer_rtt_monitor_interval_seconds <= 3600.0:
            raise ConfigError("--experimental-peer-rtt-monitor-interval must be in (0, 1h]")
        if self.log_level not in ("debug", "info", "warn", "error"):
            raise ConfigError("--log-level must be one of debug, info, warn, error")
        if len(self.members) > 7:
            raise ConfigError("raftmon supports clusters of 1 to 7 members")
        self._validate_tls()

    def _validate_tls(self) -> None:
        """etcd refuses an https listener without a certificate and key, naming the URL.

        http URLs with certificates given are allowed (etcd ignores the files for them
        and logs a warning; the member does the same at start-up).
        """
        try:
            openssl_ciphers(self.cipher_suites)
        except ValueError as err:
            raise ConfigError(f"--cipher-suites: {err}") from None
        sides = (
            ("", self.client_tls, (*self.listen_client_urls, *self.listen_metrics_urls)),
            ("peer-", self.peer_tls, self.listen_peer_urls),
        )
        for prefix, info, urls in sides:
            if bool(info.cert_file) != bool(info.key_file):
                raise ConfigError(f"--{prefix}cert-file and --{prefix}key-file go together")
            for url in urls:
                if urlsplit(url).scheme == "https" and info.empty:
                    raise ConfigError(
                        f"cannot listen on TLS for {url}: KeyFile and CertFile are not "
                        f"presented (set --{prefix}cert-file and --{prefix}key-file)"
                    )
            for flag, path in (
                ("cert-file", info.cert_file),
                ("key-file", info.key_file),
                ("trusted-ca-file", info.trusted_ca_file),
            ):
                if path and not os.access(path, os.R_OK):
                    raise ConfigError(f"--{prefix}{flag} {path!r}: cannot read the file")

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")


class Flag(NamedTuple):
    """One member flag: etcd's name, its help, how its text is read, the config field."""

    flag: str
    help: str
    kind: str = (
        "str"  # str, int, ms (an int of milliseconds), bool, urls, cluster, duration, ciphers
    )

    @property
    def dest(self) -> str:
        """The MemberConfig field: the flag in snake_case, without etcd's `experimental-`,
        with its unit when the value has one (`heartbeat_interval_ms`, `..._seconds`)."""
        name = self.flag.removeprefix("experimental-").replace("-", "_")
        return name + _UNIT_SUFFIX.get(self.kind, "")

    @property
    def env(self) -> str:
        """The environment variable that sets it when the flag is not given."""
        return "ETCD_" + self.flag.upper().replace("-", "_")


_UNIT_SUFFIX = {"ms": "_ms", "duration": "_seconds"}  # durations are parsed to seconds

# Every member flag, in `raftmon node --help` order.
_FLAGS: list[Flag] = [
    Flag("name", "human-readable name for this member"),
    Flag("data-dir", "path to the data directory (default: ${name}.etcd)"),
    Flag("listen-client-urls", "URLs to serve client traffic on", "urls"),
    Flag("advertise-client-urls", "client URLs told to others", "urls"),
    Flag("listen-peer-urls", "URLs to serve peer traffic on", "urls"),
    Flag(
        "initial-advertise-peer-urls",
        "this member's peer URLs told to the rest of the cluster",
        "urls",
    ),
    Flag("initial-cluster", "name=peerURL,... for bootstrapping", "cluster"),
    Flag("initial-cluster-state", "new or existing"),
    Flag("initial-cluster-token", "cluster token for bootstrapping"),
    Flag("heartbeat-interval", "heartbeat interval in ms", "ms"),
    Flag("election-timeout", "election timeout in ms", "ms"),
    Flag("snapshot-count", "applied entries between snapshots", "int"),
    Flag("quota-backend-bytes", "backend size quota (0 = 2 GiB)", "int"),
    Flag("auto-compaction-mode", "periodic or revision"),
    Flag(
        "auto-compaction-retention",
        "periodic: duration (1h, 30m, or hours as a number); revision: revisions to keep; "
        "0 disables",
    ),
    Flag(
        "metrics",
        "Set level of detail for exported metrics, specify 'extensive' to include histogram "
        "metrics.",
    ),
    Flag("listen-metrics-urls", "extra URLs serving /metrics", "urls"),
    Flag("max-request-bytes", "largest client request accepted", "int"),
    Flag("max-txn-ops", "most operations in one txn", "int"),
    Flag(
        "backend-batch-interval",
        "longest time applied entries wait before the backend commits them (default 100ms)",
        "duration",
    ),
    Flag(
        "backend-batch-limit",
        "most applied entries the backend holds before it commits them (default 10000)",
        "int",
    ),
    Flag(
        "experimental-wal-fsync-delay",
        "lab fault: extra delay inside every timed WAL fsync (e.g. 30ms)",
        "duration",
    ),
    Flag("wal-segment-bytes", "WAL segment size (default 64 MiB)", "int"),
    Flag(
        "experimental-snapshot-catchup-entries",
        "entries kept after a snapshot for slow followers (etcd 3.5's flag; default 5000)",
        "int",
    ),
    Flag(
        "experimental-initial-corrupt-check",
        "before serving, compare this member's HashKV with every peer's; refuse to start on "
        "a mismatch",
        "bool",
    ),
    Flag(
        "experimental-corrupt-check-time",
        "how often the leader compares every member's HashKV and raises the CORRUPT alarm on "
        "a mismatch (0 = never)",
        "duration",
    ),
    Flag(
        "experimental-watch-progress-notify-interval",
        "how often a quiet watcher created with progress_notify hears the current revision",
        "duration",
    ),
    Flag(
        "experimental-peer-rtt-monitor-interval",
        "raftmon only: how often etcd_network_peer_round_trip_time_seconds observes a healthy "
        "peer's smoothed RTT (etcd 3.4: a fixed 30s; 5s while unhealthy, never above this; "
        "below 1s, peers are probed that often too)",
        "duration",
    ),
    Flag(
        "strict-reconfig-check",
        "reject reconfiguration requests that would cause quorum loss",
        "bool",
    ),
    Flag(
        "initial-election-tick-advance",
        "whether to fast-forward initial election ticks on boot for faster election",
        "bool",
    ),
    Flag("enable-fault-injection", "serve /raftmon/faults on the metrics listener", "bool"),
    Flag("log-level", "debug, info, warn or error"),
    Flag("cert-file", "path to the client server TLS cert file"),
    Flag("key-file", "path to the client server TLS key file"),
    Flag("trusted-ca-file", "path to the client server TLS trusted CA file"),
    Flag(
        "client-cert-auth",
        "enable client cert authentication (a trusted CA file alone also requires one)",
        "bool",
    ),
    Flag("peer-cert-file", "path to the peer server TLS cert file"),
    Flag("peer-key-file", "path to the peer server TLS key file"),
    Flag("peer-trusted-ca-file", "path to the peer server TLS trusted CA file"),
    Flag("peer-client-cert-auth", "enable peer client cert auth", "bool"),
    Flag(
        "cipher-suites",
        "comma-separated list of supported TLS cipher suites between client/server and peers "
        "(Go names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; empty = defaults)",
        "ciphers",
    ),
    Flag(
        "cors",
        "comma-separated whitelist of origins for CORS, or cross-origin resource sharing "
        "(empty or * means allow all)",
        "origins",
    ),
]


def _cors_origins(raw: str) -> tuple[str, ...]:
    """etcd's --cors: "*", empty (both allow every origin), or scheme://host:port URLs."""
    if raw.strip() in ("", "*"):
        return (raw.strip(),) if raw.strip() else ()
    urls = _split_urls(raw)
    for url in urls:
        if urlsplit(url).path:
            raise ConfigError(f"URL must not contain a path: {url}")
    return tuple(sorted(set(urls)))


def _convert(kind: str, flag: str, raw: str) -> object:
    try:
        if kind == "str":
            return raw
        if kind in ("int", "ms"):
            return int(raw)
        if kind == "urls":
            return _split_urls(raw)
        if kind == "cluster":
            return parse_initial_cluster(raw)
        if kind == "duration":
            return parse_duration(raw)
        if kind == "ciphers":
            names = tuple(n.strip() for n in raw.split(",") if n.strip())
            openssl_ciphers(names)  # refuses unknown names now, not at the first handshake
            return names
        if kind == "origins":
            return _cors_origins(raw)
        if kind == "bool":
            if raw.lower() in ("", "1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"not a boolean: {raw!r}")
    except ValueError as err:
        raise ConfigError(f"--{flag}: {err}") from err
    raise AssertionError(kind)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftmon node",
        description="Run one raftmon member. Flags are etcd's; each can also be set as "
        "ETCD_<FLAG_NAME> in the environment (e.g. ETCD_NAME, ETCD_DATA_DIR).",
    )
    for f in _FLAGS:
        if f.kind == "bool":
            parser.add_argument(f"--{f.flag}", dest=f.dest, nargs="?", const="true", help=f.help)
        else:
            parser.add_argument(f"--{f.flag}", dest=f.dest, help=f.help)
    return parser


def parse_config(argv: list[str], environ: dict[str, str] | None = None) -> MemberConfig:
    """Flags, then ETCD_* environment, then etcd's defaults; validated."""
    env = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    values: dict[str, object] = {}
    for f in _FLAGS:
        raw = args.get(f.dest)
        if raw is None:
            raw = env.get(f.env)
        if raw is not None:
            values[f.dest] = _convert(f.kind, f.flag, raw)
    name = str(values.get("name", "default"))
    values.setdefault("data_dir", f"{name}.etcd")
    if values.get("quota_backend_bytes") == 0:
        values["quota_backend_bytes"] = DEFAULT_QUOTA_BYTES
    # etcd's single-member defaults follow the peer URLs when only those are given
    if "initial_cluster" not in values and "initial_advertise_peer_urls" in values:
        values["initial_cluster"] = {name: values["initial_advertise_peer_urls"]}
    if "initial_advertise_peer_urls" not in values and "initial_cluster" in values:
        cluster = values["initial_cluster"]
        assert isinstance(cluster, dict)
        if name in cluster:
            values["initial_advertise_peer_urls"] = cluster[name]
    if "advertise_client_urls" not in values and "listen_client_urls" in values:
        values["advertise_client_urls"] = values["listen_client_urls"]
    if "initial_cluster" not in values and name != "default":
        values["initial_cluster"] = {name: ("http://localhost:2380",)}
    cfg = MemberConfig(**values)  # type: ignore[arg-type]
    cfg.validate()
    return cfg


def flags_markdown() -> str:
    """docs/flags.md: every member flag, its ETCD_* variable, default and meaning.

    Generated from `_FLAGS` and `MemberConfig`'s defaults (`python -m node.config >
    docs/flags.md`), so the page cannot drift from what the parser accepts.
    """
    defaults = {f.name: f for f in fields(MemberConfig)}
    rows = [
        "# `raftmon node` flags",
        "",
        "Generated by `python -m node.config > docs/flags.md`; a test fails when it is stale.",
        "Names and meanings are etcd's; a flag wins over its environment variable.",
        "",
        "| flag | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in _FLAGS:
        spec = defaults.get(f.dest)
        default = ""
        if spec is not None and spec.default is not MISSING:
            value = spec.default
            if f.kind == "duration":
                default = f"{float(value) * 1000:g}ms"  # as the flag is written
            elif isinstance(value, bool):
                default = str(value).lower()
            elif isinstance(value, tuple):
                default = ",".join(value)
            else:
                default = str(value)
        shown = f"`{default}`" if default else ""
        rows.append(f"| `--{f.flag}` | `{f.env}` | {shown} | {f.help} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(flags_markdown())
