"""Real etcd 3.4 members on loopback for the load generator's tests.

One member or a three-member cluster, free ports, data dirs under a temp folder,
each member's log kept for failure messages. `stop()` kills everything it started;
the fixtures call it in `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from loadgen.client import parse_metrics
from tests.helpers import free_port

PUT_COUNTERS = ("etcd_mvcc_put_total", "etcd_debugging_mvcc_put_total")


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _post(url: str, body: dict[str, object], timeout: float = 1.0) -> dict[str, object] | None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            decoded = json.loads(resp.read() or b"null")
            return decoded if isinstance(decoded, dict) else None
    except (OSError, ValueError, urllib.error.URLError):
        return None


class EtcdCluster:
    """`size` etcd members (Debian's /usr/bin/etcd) forming one cluster on 127.0.0.1."""

    def __init__(self, etcd: str, base_dir: Path, size: int = 1) -> None:
        self.etcd = etcd
        self.base_dir = base_dir
        self.members = []
        for i in range(size):
            name = f"e{i + 1}"
            self.members.append(
                EtcdMember(
                    name=name,
                    client_url=f"http://127.0.0.1:{free_port()}",
                    peer_url=f"http://127.0.0.1:{free_port()}",
                    data_dir=base_dir / f"{name}.etcd",
                    log_path=base_dir / f"{name}.log",
                )
            )

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, timeout: float = 30.0) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            args = [
                self.etcd,
                f"--name={m.name}",
                f"--data-dir={m.data_dir}",
                f"--listen-client-urls={m.client_url}",
                f"--advertise-client-urls={m.client_url}",
                f"--listen-peer-urls={m.peer_url}",
                f"--initial-advertise-peer-urls={m.peer_url}",
                f"--initial-cluster={initial}",
                f"--initial-cluster-token=loadgen-{os.getpid()}-{id(self)}",
                "--initial-cluster-state=new",
                "--heartbeat-interval=50",
                "--election-timeout=500",
                "--log-level=warn",
            ]
            with open(m.log_path, "ab") as log:
                m.proc = subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        try:
            self.wait_leader(timeout)
        except BaseException:
            self.stop()
            raise

    def status(self, m: EtcdMember) -> dict[str, object] | None:
        return _post(m.client_url + "/v3/maintenance/status", {})

    def leader(self) -> EtcdMember | None:
        for m in self.members:
            if m.proc is None or m.proc.poll() is not None:
                continue
            st = self.status(m)
            if st and st.get("leader") and st.get("leader") == _member_id(st):
                return m
        return None

    def wait_leader(self, timeout: float = 30.0) -> EtcdMember:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited\n{m.log_tail()}")
            leader = self.leader()
            # Every member must answer too, so a run never starts against a joining member.
            if leader is not None and all(self.status(m) for m in self.members):
                return leader
            time.sleep(0.05)
        tails = "\n".join(f"--- {m.name}\n{m.log_tail()}" for m in self.members)
        raise TimeoutError(f"etcd: no leader within {timeout}s\n{tails}")

    def put_count(self, m: EtcdMember | None = None) -> float:
        """etcd's own count of applied puts on member `m` (the first by default)."""
        m = m or self.members[0]
        with urllib.request.urlopen(m.client_url + "/metrics", timeout=5) as resp:
            samples = parse_metrics(resp.read().decode())
        for name in PUT_COUNTERS:
            value = samples.get(name)
            if value is not None:
                return value
        raise AssertionError(f"none of {PUT_COUNTERS} on {m.client_url}/metrics")

    def kill(self, m: EtcdMember) -> None:
        if m.proc is not None and m.proc.poll() is None:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(timeout=10)

    def stop(self) -> None:
        # SIGKILL: the data dirs are throw-away, and a graceful etcd stop costs seconds.
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.kill()
        for m in self.members:
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=5)


def _member_id(status: dict[str, object]) -> object:
    header = status.get("header")
    return header.get("member_id") if isinstance(header, dict) else None
