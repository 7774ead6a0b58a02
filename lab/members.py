"""What a cluster of member processes is, whether raftmon's (`LocalCluster`) or etcd's.

Members by name, the etcd flags that place them (raftmon keeps etcd's spellings), the
status each answers, the leader they agree on, their logs, and kill -9 of one of them.
The two clusters differ only in how a member is started, stopped and restarted.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lab.procs import Running, http_json, tail, wait_until

if TYPE_CHECKING:
    import ssl
    import subprocess
    from pathlib import Path


@dataclass(kw_only=True)
class ProcessMember:
    """One member process: its addresses, data dir and log."""

    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False  # SIGSTOPped: alive, but answers nothing

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def placement_flags(
    m: ProcessMember, initial_cluster: str, token: str, state: str = "new"
) -> list[str]:
    """etcd's flags that name a member, its data dir, its URLs and its cluster (`state`:
    "new" for a member of a new cluster, "existing" for one joining a running cluster)."""
    return [
        f"--name={m.name}",
        f"--data-dir={m.data_dir}",
        f"--listen-client-urls={m.client_url}",
        f"--advertise-client-urls={m.client_url}",
        f"--listen-peer-urls={m.peer_url}",
        f"--initial-advertise-peer-urls={m.peer_url}",
        f"--initial-cluster={initial_cluster}",
        f"--initial-cluster-token={token}",
        f"--initial-cluster-state={state}",
    ]


M = TypeVar("M", bound=ProcessMember)


class ProcessCluster(Running, Generic[M]):
    """Members by name, their status and leader; `with` starts and always stops them."""

    members: list[M]
    # The CA and client certificate every request to a member presents (https clusters).
    _client_ssl: ssl.SSLContext | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def member(self, name: str) -> M:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"no member named {name!r}")

    def kill(self, name: str) -> None:
        """SIGKILL one member: no shutdown path runs, as in a crash or power loss of the process."""
        m = self.member(name)
        if m.proc is not None and m.alive:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(timeout=10)
        m.paused = False

    def status(self, name: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """The member's /v3/maintenance/status, or None when it does not answer one."""
        m = self.member(name)
        if not m.alive or m.paused:
            return None
        try:
            result = http_json(
                m.client_url + "/v3/maintenance/status",
                {},
                timeout=timeout,
                context=self._client_ssl,
            )
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) and "header" in result else None

    def leader(self) -> str | None:
        """Name of the member every reachable member agrees leads, if any."""
        ids: dict[str, str] = {}
        leaders: set[str] = set()
        for m in self.members:
            st = self.status(m.name)
            if st is None:
                continue
            ids[str(st["header"].get("member_id"))] = m.name
            lead = str(st.get("leader") or "0")
            if lead != "0":
                leaders.add(lead)
        if len(leaders) == 1:
            return ids.get(leaders.pop())
        return None

    def check_running(self) -> None:
        """Raise when a member died on its own (a failed start); a no-op unless overridden."""

    def wait_leader(self, timeout: float = 20.0, exclude: str | None = None) -> str:
        """The leader's name once reachable members agree on one other than `exclude`."""

        def found() -> str | None:
            self.check_running()
            lead = self.leader()
            return lead if lead is not None and lead != exclude else None

        return wait_until("a leader", found, timeout, interval=0.1, detail=self.logs_tail)

    def logs_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {m.name}\n{m.log_tail(lines)}" for m in self.members)
