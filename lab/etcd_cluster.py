"""A real etcd 3.4 cluster (Debian's etcd-server) with the surface the scenarios use.

member-down and quorum-loss need no fault injection, only kill -9 and restart, so they
also run on etcd itself: the same rules and routing, proven on the system they were
written for. The class mirrors the parts of `lab.cluster.LocalCluster` the scenarios
call (`members`, `endpoints`, `kill`, `restart`, `leader`, `wait_leader`, `stop`).
The tests' etcd members (the load generator's, the gateway's and the dashboards'
references) are this class too.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.children import spawn
from lab.members import ProcessCluster, ProcessMember, placement_flags
from lab.procs import free_ports, wait_until

if TYPE_CHECKING:
    import ssl

    from lab.certs import Authority

log = logging.getLogger(__name__)

ETCD = "etcd"


@dataclass(kw_only=True)
class EtcdMember(ProcessMember):
    @property
    def metrics_url(self) -> str:
        """etcd serves /metrics on the client URL (no --listen-metrics-urls here)."""
        return self.client_url


class EtcdCluster(ProcessCluster[EtcdMember]):
    """`size` etcd members on 127.0.0.1, default timings (100 ms heartbeat, 1 s election)."""

    def __init__(
        self,
        binary: str,
        base_dir: Path,
        size: int = 3,
        extra_args: list[str] | None = None,
        authority: Authority | None = None,
    ) -> None:
        self.binary = binary
        self.base_dir = Path(base_dir)
        self.extra_args = extra_args or []
        ports = free_ports(2 * size)
        names = [f"e{i + 1}" for i in range(size)]
        # With an authority: https everywhere, client and peer certificates required, with
        # etcd's own flags (the ones raftmon copies); /metrics on the client URL needs one too.
        self.certs = authority.cluster_certs(self.base_dir / "tls", names) if authority else None
        self.client_ssl: ssl.SSLContext | None = authority.client_ssl() if authority else None
        self._client_ssl = self.client_ssl
        scheme = "https" if authority else "http"
        self.members = [
            EtcdMember(
                name=names[i],
                client_url=f"{scheme}://127.0.0.1:{ports[2 * i]}",
                peer_url=f"{scheme}://127.0.0.1:{ports[2 * i + 1]}",
                data_dir=self.base_dir / f"e{i + 1}.etcd",
                log_path=self.base_dir / f"e{i + 1}.log",
            )
            for i in range(size)
        ]
        self.token = f"raftmon-lab-{os.getpid()}-{int(time.time() * 1000)}"

    def _spawn(self, m: EtcdMember) -> None:
        argv = [
            self.binary,
            *placement_flags(m, self.initial_cluster(), self.token),
            "--logger=zap",
            "--log-level=warn",
            *(self.certs.member_flags(m.name) if self.certs else []),
            *self.extra_args,
        ]
        with open(m.log_path, "ab") as out:
            m.proc = spawn(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start every member; return once there is a leader and every member answers."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for m in self.members:
            self._spawn(m)
        try:
            self.wait_leader(timeout)
            # Every member must answer too, so nothing starts against a joining member.
            wait_until(
                "every etcd member answers",
                lambda: all(self.status(m.name) for m in self.members),
                timeout,
                interval=0.1,
                detail=self.logs_tail,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # SIGKILL: lab data is throw-away, and etcd's graceful stop costs seconds per member.
        for m in self.members:
            if m.alive:
                assert m.proc is not None
                m.proc.kill()
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log.warning("etcd member did not exit name=%s", m.name)

    def restart(self, name: str, wait: bool = True, timeout: float = 30.0) -> None:
        m = self.member(name)
        self.kill(name)
        self._spawn(m)
        if wait:
            wait_until(
                f"etcd {name} answers",
                lambda: self.status(name) is not None,
                timeout,
                detail=m.log_tail,
            )

    def check_running(self) -> None:
        """A member that exited by itself (not by our kill -9) failed: say why."""
        for m in self.members:
            if m.proc is not None and m.proc.poll() is not None and m.proc.returncode != -9:
                raise RuntimeError(f"etcd {m.name} exited\n{m.log_tail()}")
