"""One frozen description of a load run, and how it is shared among worker processes.

The config is a plain dataclass of primitives so it pickles into `spawn`ed workers.
Defaults follow etcd's `benchmark` tool (total 10000, 1 client, 1 conn, 8-byte keys
and values, a key space of 1) so the same command means the same load on both.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass, replace

PROTOCOLS = ("http", "grpc")  # etcd's JSON gateway, etcd's native gRPC API
CLIENT_IO = ("auto", "loop", "threads")  # how a worker's clients wait: see client_threads
#: `--client-io auto`: a worker with at most this many HTTP clients runs them on threads.
THREADED_CLIENTS = 4
WORKLOADS = ("put", "range", "txn-put", "mixed", "watch", "lease-keepalive")
DEFAULT_TOTAL = 10_000


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """Everything a run needs; see `loadgen.cli` for the flag of each field."""

    workload: str
    endpoints: tuple[str, ...]
    protocol: str = "http"  # http = etcd's JSON gateway, grpc = its native API (loadgen.conn)
    client_io: str = "auto"  # see client_threads
    conns: int = 1
    clients: int = 1
    total: int | None = None  # requests; None with duration -> time-bound run
    duration: float | None = None  # seconds
    rate: float = 0.0  # requests/s over the whole run (all workers); 0 = closed loop
    consistency: str = "l"  # l = linearizable, s = serializable (reads)
    target_leader: bool = False
    key_size: int = 8
    val_size: int = 8
    key_space_size: int = 1
    sequential_keys: bool = False
    key_prefix: str = ""
    range_key: str | None = None  # `range KEY [END]`: fixed range instead of the key space
    range_end: str | None = None
    txn_ops: int = 1
    read_ratio: float = 0.5
    watchers: int = 10
    lease_ttl: int = 60
    prefill: bool = False
    timeout: float = 5.0
    seed: int = 1
    workers: int = 1
    # etcd benchmark's TLS flags: paths, so the config still pickles into workers
    cacert: str = ""
    cert: str = ""
    key: str = ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client context for https endpoints: trust --cacert, present --cert/--key."""
        if not (self.cacert or self.cert):
            return None
        ctx = ssl.create_default_context(cafile=self.cacert or None)
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    @property
    def open_loop(self) -> bool:
        return self.rate > 0

    @property
    def planned_total(self) -> int | None:
        """Requests the run intends to send, when that is known in advance."""
        if self.total is not None:
            return self.total
        if self.open_loop and self.duration is not None:
            return math.ceil(self.duration * self.rate)
        return None

    def validate(self) -> None:
        """Raise ValueError on a config no run could honour."""
        if self.workload not in WORKLOADS:
            raise ValueError(f"unknown workload {self.workload!r}")
        if not self.endpoints:
            raise ValueError("--endpoints: at least one endpoint is required")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}")
        if self.client_io not in CLIENT_IO:
            raise ValueError(f"--client-io must be one of {', '.join(CLIENT_IO)}")
        if self.client_io == "threads" and (self.protocol != "http" or self.workload == "watch"):
            raise ValueError("--client-io=threads: --protocol=http and not the watch workload")
        if self.conns < 1 or self.clients < 1 or self.workers < 1:
            raise ValueError("--conns, --clients and --workers must be >= 1")
        if self.total is not None and self.total < 0:
            raise ValueError("--total must be >= 0")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("--duration must be > 0")
        if self.rate < 0:
            raise ValueError("--rate must be >= 0")
        if self.consistency not in ("l", "s"):
            raise ValueError("--consistency must be l or s")
        if self.key_size < 1 or self.val_size < 0 or self.key_space_size < 1:
            raise ValueError("--key-size >= 1, --val-size >= 0, --key-space-size >= 1")
        if self.txn_ops < 1 or self.txn_ops > self.key_space_size:
            raise ValueError("--txn-ops must be in [1, --key-space-size] (keys in a txn differ)")
        if not 0.0 <= self.read_ratio <= 1.0:
            raise ValueError("--read-ratio must be in [0, 1]")
        if self.watchers < 1:
            raise ValueError("--watchers must be >= 1")
        if self.lease_ttl < 1:
            raise ValueError("--ttl must be >= 1")
        if self.timeout <= 0:
            raise ValueError("--timeout must be > 0")
        if bool(self.cert) != bool(self.key):
            raise ValueError("--cert and --key go together")


@dataclass(frozen=True, kw_only=True)
class WorkerShare:
    """One worker's part of a run: tickets index*stride+offset of the global schedule."""

    index: int
    count: int
    clients: int
    conns: int

    def tickets(self, total: int) -> int:
        """How many of `total` global tickets belong to this worker (k*count+index < total)."""
        if total <= self.index:
            return 0
        return (total - self.index + self.count - 1) // self.count


def split_evenly(n: int, parts: int) -> list[int]:
    """n split into `parts` integers that differ by at most one, larger first."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def effective_workers(cfg: LoadConfig) -> int:
    """Workers actually used: never more than clients; the watch workload runs in one.

    Watch latency pairs each put's ack with the events of the same revision, which
    only the process that sent the put can do.
    """
    if cfg.workload == "watch":
        return 1
    return max(1, min(cfg.workers, cfg.clients))


def shares(cfg: LoadConfig) -> list[WorkerShare]:
    """Split clients and conns evenly over the workers (each gets at least one of each)."""
    n = effective_workers(cfg)
    clients = split_evenly(cfg.clients, n)
    conns = split_evenly(max(cfg.conns, n), n)
    return [
        WorkerShare(index=i, count=n, clients=clients[i], conns=max(1, conns[i])) for i in range(n)
    ]


def client_threads(cfg: LoadConfig, share: WorkerShare) -> bool:
    """Whether a worker's clients each run on a thread with blocking sockets rather than as
    tasks of its event loop.

    Threads cost less per request while they are few (`loadgen.blocking_http`: no loop
    turn per answer), the loop less once many answers share a turn and threads would
    contend for the GIL. Only HTTP has a blocking client, and the watch workload's
    streams and event matching live on the loop.
    """
    if cfg.protocol != "http" or cfg.workload == "watch":
        return False
    if cfg.client_io == "auto":
        return share.clients <= THREADED_CLIENTS
    return cfg.client_io == "threads"


def with_endpoints(cfg: LoadConfig, endpoints: tuple[str, ...]) -> LoadConfig:
    return replace(cfg, endpoints=endpoints)
