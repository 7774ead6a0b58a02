"""One lab run: a cluster under a cluster label, its load, faults, observer and checks.

A scenario is one or more *runs* (the fault, its control, the etcd variant). Each run
gets a `RunContext` that owns everything the run starts (clusters, writers, the
observer) and tears it all down in `close()`, whatever happened. Checks are recorded,
not raised, so a run always ends with a full timeline that says which expectation failed
and what was seen instead.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lab import procs
from lab.certs import client_flags
from lab.cluster import LocalCluster
from lab.etcd_cluster import ETCD, EtcdCluster
from lab.procs import ManagedProcess, free_ports, hostport, load_generator
from lab.prom import JOB, LOADGEN_JOB, LabStack, Member
from lab.timeline import FAULT, STEP, Event, Observer, Timeline
from lab.writer import Writer

if TYPE_CHECKING:
    import ssl
    from pathlib import Path

    from lab.certs import Authority
    from lab.webhook import Notification

log = logging.getLogger(__name__)

# etcd's default timings: robust on a busy 2-core machine, and what the course describes.
RAFTMON_TIMING = ["--heartbeat-interval=100", "--election-timeout=1000"]


class LabCluster(Protocol):
    """What the scenarios need from a cluster; `LocalCluster` and `EtcdCluster` both fit."""

    @property
    def members(self) -> list[Any]: ...
    @property
    def endpoints(self) -> list[str]: ...
    def kill(self, name: str) -> None: ...
    def restart(self, name: str, wait: bool = True, timeout: float = 30.0) -> None: ...
    def leader(self) -> str | None: ...
    def wait_leader(self, timeout: float = 20.0, exclude: str | None = None) -> str: ...
    def stop(self) -> None: ...
    def logs_tail(self, lines: int = 30) -> str: ...


@dataclass
class Check:
    text: str
    ok: bool
    detail: str = ""
    # (board uid, panel title or annotation name) of every dashboard item this check
    # queried; empty for checks that are not about a dashboard.
    panels: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "ok": self.ok, "detail": self.detail}
        if self.panels:
            out["panels"] = [list(p) for p in self.panels]
        return out


@dataclass
class RunResult:
    """Everything a run produced; `ok` when every check passed and nothing crashed."""

    scenario: str
    run: str
    target: str  # raftmon | etcd
    control: bool
    checks: list[Check] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    error: str = ""
    logs: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.checks) and all(c.ok for c in self.checks)

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "run": self.run,
            "target": self.target,
            "control": self.control,
            "ok": self.ok,
            "error": self.error,
            "checks": [c.to_json() for c in self.checks],
            "measurements": self.measurements,
            "timeline": [e.to_json() for e in self.events],
            "notifications": [n.to_json() for n in self.notifications],
        }


class RunContext:
    """Owns a run's processes and threads; `close()` stops them in reverse order.

    With an `authority` (`raftmon lab --tls`) every cluster the run starts is on https
    with client and peer certificates required, signed by that CA, and `tls` is the one
    client context (the CA to verify, the client certificate to present) that everything
    the run sends to members goes through: `http_json`, the writers, the load generator.
    """

    def __init__(
        self,
        stack: LabStack,
        base_dir: Path,
        run: str,
        timeline: Timeline,
        authority: Authority | None = None,
    ) -> None:
        self.stack = stack
        self.base_dir = base_dir
        self.run = run
        self.timeline = timeline
        self.authority = authority
        self.tls: ssl.SSLContext | None = authority.client_ssl() if authority else None
        self.observer = Observer(stack, run, timeline)
        self.checks: list[Check] = []
        self.measurements: dict[str, Any] = {}
        self.clusters: list[LabCluster] = []
        self.writers: list[Writer] = []
        self.loads: list[ManagedProcess] = []
        self._closed = False

    # ---- recording ----------------------------------------------------------------------
    def check(
        self, text: str, ok: bool, detail: str = "", panels: tuple[tuple[str, str], ...] = ()
    ) -> bool:
        self.checks.append(Check(text, bool(ok), detail, panels))
        self.timeline.add(
            "check", f"{'PASS' if ok else 'FAIL'} {text}" + (f" ({detail})" if detail else "")
        )
        return bool(ok)

    def step(self, text: str, **data: Any) -> None:
        self.timeline.add(STEP, text, **data)

    def fault(self, text: str, **data: Any) -> None:
        self.timeline.add(FAULT, text, **data)

    # ---- talking to members ---------------------------------------------------------------
    def http_json(
        self,
        url: str,
        body: dict[str, Any] | None = None,
        method: str | None = None,
        timeout: float = 3.0,
    ) -> Any:
        """`procs.http_json` with this run's client certificate and CA (on --tls)."""
        return procs.http_json(url, body, method=method, timeout=timeout, context=self.tls)

    # ---- clusters -----------------------------------------------------------------------
    def start_raftmon(
        self, size: int = 3, extra: list[str] | None = None, name: str = "raftmon"
    ) -> LocalCluster:
        base = self.base_dir / name
        shutil.rmtree(base, ignore_errors=True)
        cluster = LocalCluster(
            base, size, extra_args=[*RAFTMON_TIMING, *(extra or [])], authority=self.authority
        )
        self.clusters.append(cluster)
        cluster.start(timeout=60)
        self._register(cluster)
        self.step(f"raftmon cluster of {size} up{self._on_tls()}, leader {cluster.leader()}")
        return cluster

    def start_etcd(self, size: int = 3) -> EtcdCluster:
        binary = shutil.which(ETCD)
        if binary is None:
            raise RuntimeError("etcd not found: install Debian's etcd-server (make tools)")
        base = self.base_dir / "etcd"
        shutil.rmtree(base, ignore_errors=True)
        cluster = EtcdCluster(binary, base, size, authority=self.authority)
        self.clusters.append(cluster)
        cluster.start(timeout=60)
        self._register(cluster)
        self.step(f"etcd 3.4 cluster of {size} up{self._on_tls()}, leader {cluster.leader()}")
        return cluster

    def _on_tls(self) -> str:
        return " on https (mTLS)" if self.authority else ""

    def _register(self, cluster: LabCluster) -> None:
        members = [Member(m.name, hostport(m.metrics_url)) for m in cluster.members]
        scheme = "https" if self.authority else "http"
        self.stack.register(self.run, members, scheme=scheme)
        self.stack.wait_scraped(self.run, len(members), timeout=30)
        if self.authority:
            self._check_scraped_over_https(len(members))
        self.observer.start()

    def _check_scraped_over_https(self, count: int) -> None:
        """Prometheus' own view of this run's member targets: https scrape URLs, all up.

        `wait_scraped` saw `up == 1`; the scrape URLs say it was over https, which on these
        members (client certificates required) means the shared tls_config was presented.
        """
        prom = self.stack.prometheus
        if prom is None:
            return
        targets = [
            t
            for t in prom.api("targets", state="active")["activeTargets"]
            if t["labels"].get("cluster") == self.run and t["labels"].get("job") == JOB
        ]
        urls = sorted(str(t["scrapeUrl"]) for t in targets)
        self.measurements["scrape_urls"] = urls
        ok = len(targets) == count and all(
            str(t["scrapeUrl"]).startswith("https://") and t["health"] == "up" for t in targets
        )
        self.check(
            f"Prometheus scrapes all {count} members over https with the lab CA's client "
            "certificate",
            ok,
            ", ".join(
                f"{t['labels'].get('instance')} {t['scrapeUrl']} {t['health']}"
                for t in sorted(targets, key=lambda t: str(t["labels"].get("instance")))
            )
            or "no targets",
        )

    def writer(self, endpoints: list[str], **kw: Any) -> Writer:
        kw.setdefault("ssl", self.tls)
        w = Writer(endpoints, prefix=f"lab/{self.run}/{len(self.writers)}", **kw)
        self.writers.append(w)
        w.start()
        return w

    def load_generator(
        self, endpoints: list[str], *, rate: float = 20, clients: int = 2
    ) -> ManagedProcess:
        """Start a real `raftmon load put`, scraped by Prometheus under this run's label.

        Its client-side metrics (raftmon_loadgen_*, `--metrics-port`) are what the
        load-test board reads; the lab's own `writer()` has none. Open loop at `rate`
        requests/s, small values, for longer than any run; `close()` stops it. The scrape
        target is registered at once and nothing waits for it here: Prometheus picks it
        up within two seconds, and whoever reads its series waits for them (bounded).
        """
        port = free_ports(1)[0]
        name = f"load-{len(self.loads)}"
        a = self.authority
        proc = load_generator(
            name,
            self.base_dir / f"{name}.log",
            endpoints,
            [
                f"--clients={clients}",
                f"--rate={rate:g}",
                "--duration=600s",
                "--timeout=2s",
                f"--metrics-port={port}",
                *(client_flags(a.ca, a.client) if a is not None else []),
            ],
            ["--key-space-size=50", "--val-size=64"],
        )
        self.loads.append(proc)
        proc.start()
        self.stack.register(self.run, [Member(name, f"127.0.0.1:{port}")], job=LOADGEN_JOB)
        self.step(f"raftmon load put at {rate:g}/s started, scraped as job {LOADGEN_JOB}")
        return proc

    # ---- faults (raftmon members' /raftmon/faults) ------------------------------------
    def set_faults(self, cluster: LocalCluster, name: str, body: dict[str, Any]) -> None:
        m = cluster.member(name)
        answer = self.http_json(m.metrics_url + "/raftmon/faults", body)
        if not isinstance(answer, dict) or "error" in answer:
            raise RuntimeError(f"fault injection on {name} refused: {answer}")

    def clear_faults(self, cluster: LocalCluster, names: list[str] | None = None) -> None:
        for m in cluster.members:
            if names is not None and m.name not in names:
                continue
            if m.alive:
                try:
                    self.http_json(m.metrics_url + "/raftmon/faults", method="DELETE")
                except OSError:
                    log.warning("could not clear faults member=%s", m.name)

    def wait_all_resolved(self, alertnames: list[str], timeout: float) -> bool:
        """Until no alert of these names is pending or firing in Prometheus any more."""
        return self.observer.wait(
            "alerts resolved: " + ", ".join(alertnames),
            lambda: not any(self.observer.active(a) for a in alertnames),
            timeout,
        )

    # ---- the end ------------------------------------------------------------------------
    def close(self) -> str:
        """Stop everything this run started; returns the members' log tails."""
        if self._closed:
            return ""
        self._closed = True
        for w in self.writers:
            w.stop()
        logs = ""
        for proc in self.loads:
            proc.stop(grace=5)
            logs += f"--- {proc.name} (raftmon load)\n{proc.tail(10)}\n"
        self.observer.stop()
        for c in reversed(self.clusters):
            try:
                logs += c.logs_tail(15)
            except Exception:  # log tails are a courtesy; stopping is what matters
                log.exception("could not read log tails")
            c.stop()
        self.stack.unregister(self.run)
        return logs


def member_ids(cluster: LabCluster, context: ssl.SSLContext | None = None) -> dict[str, str]:
    """name -> decimal member id, from each live member's status (`context`: on --tls)."""
    ids: dict[str, str] = {}
    for m in cluster.members:
        try:
            st = procs.http_json(
                m.client_url + "/v3/maintenance/status", {}, timeout=2.0, context=context
            )
        except OSError:
            continue
        if isinstance(st, dict) and "header" in st:
            ids[m.name] = str(st["header"]["member_id"])
    return ids


def transfer_leadership(
    cluster: LabCluster, to: str, timeout: float = 10.0, context: ssl.SSLContext | None = None
) -> str:
    """Move leadership to member `to` (etcd's MoveLeader); returns the new leader's name."""
    ids = member_ids(cluster, context)
    lead = cluster.wait_leader(timeout)
    if lead == to:
        return to
    by_name = {m.name: m for m in cluster.members}
    answer = procs.http_json(
        by_name[lead].client_url + "/v3/maintenance/transfer-leadership",
        {"targetID": ids[to]},
        timeout=timeout,
        context=context,
    )
    if isinstance(answer, dict) and answer.get("error"):
        raise RuntimeError(f"transfer-leadership {lead} -> {to} failed: {answer}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.leader() == to:
            return to
        time.sleep(0.05)
    return cluster.wait_leader(timeout)
