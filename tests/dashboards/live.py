"""Real processes for the live dashboard check: Prometheus, etcd 3.4 members, the load generator.

Each class starts processes on loopback free ports under a temp folder and `stop()` ends
exactly what it started (terminate, then kill after a bounded wait). Waits poll with a
deadline; a failure message carries the process log's tail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = (
    ROOT / "alerts" / "out" / "prometheus_rules.yaml",
    ROOT / "alerts" / "out" / "prometheus_alerts.yaml",
)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except (OSError, urllib.error.URLError):
        return None


def wait_for(what: str, check: Any, timeout: float, log: Path | None = None) -> None:
    """Poll `check()` every 0.2 s until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout}s\n{_tail(log) if log else ''}")


@dataclass
class Target:
    """One scrape job: its name, `host:port` targets, metrics path and target labels."""

    job: str
    targets: list[str]
    labels: dict[str, str]
    path: str = "/metrics"


@dataclass
class Prometheus:
    """Debian's prometheus with a 1 s scrape and rule evaluation interval and our rules."""

    binary: str
    base_dir: Path
    jobs: list[Target]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {
                    "job_name": job.job,
                    "metrics_path": job.path,
                    "static_configs": [{"targets": job.targets, "labels": job.labels}],
                }
                for job in self.jobs
            ],
        }

    def start(self, timeout: float = 30.0) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.base_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for("prometheus ready", lambda: _get(f"{self.url}/-/ready"), timeout, self.log_path)

    def stop(self) -> None:
        _stop(self.proc)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            body = json.loads(err.read())
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at the current time; the series it returns."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": match})
        return values

    def targets_summary(self) -> str:
        active = self.api("targets")["activeTargets"]
        return "\n".join(
            f"{t['labels'].get('job')} {t['scrapeUrl']} {t['health']} {t['lastError']}"
            for t in active
        )


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None


class EtcdCluster:
    """A 3-member etcd 3.4 cluster (/usr/bin/etcd) on loopback; metrics on the client URL."""

    def __init__(self, binary: str, base_dir: Path, size: int = 3) -> None:
        self.binary = binary
        self.base_dir = base_dir
        self.members = [
            EtcdMember(
                name=f"e{i + 1}",
                client_url=f"http://127.0.0.1:{free_port()}",
                peer_url=f"http://127.0.0.1:{free_port()}",
                data_dir=base_dir / f"e{i + 1}.etcd",
                log_path=base_dir / f"e{i + 1}.log",
            )
            for i in range(size)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, timeout: float = 30.0) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            with open(m.log_path, "wb") as log:
                m.proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--name={m.name}",
                        f"--data-dir={m.data_dir}",
                        f"--listen-client-urls={m.client_url}",
                        f"--advertise-client-urls={m.client_url}",
                        f"--listen-peer-urls={m.peer_url}",
                        f"--initial-advertise-peer-urls={m.peer_url}",
                        f"--initial-cluster={initial}",
                        "--initial-cluster-token=raftmon-dashboards-live",
                        "--initial-cluster-state=new",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for m in self.members:
            wait_for(
                f"etcd {m.name} healthy",
                lambda m=m: b'"true"' in (_get(f"{m.client_url}/health") or b""),
                timeout,
                m.log_path,
            )

    def stop(self) -> None:
        for m in self.members:
            _stop(m.proc)


class LoadGenerator:
    """`raftmon load put` at a light open-loop rate, serving its metrics for Prometheus."""

    def __init__(self, base_dir: Path, endpoints: list[str], rate: int = 30) -> None:
        self.log_path = base_dir / "loadgen.log"
        self.port = free_port()
        self.endpoints = endpoints
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "loadgen",
                    f"--endpoints={','.join(self.endpoints)}",
                    "--conns=2",
                    "--clients=4",
                    f"--rate={self.rate}",
                    "--duration=600s",
                    f"--metrics-port={self.port}",
                    "--no-progress",
                    "put",
                    "--key-space-size=100",
                    "--val-size=64",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        wait_for(
            "load generator metrics",
            lambda: _get(f"http://{self.target}/metrics"),
            timeout,
            self.log_path,
        )

    def stop(self) -> None:
        _stop(self.proc)


def hostport(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def clear_faults(metrics_url: str) -> None:
    """DELETE a raftmon member's injected faults (best effort: the member may be gone)."""
    req = urllib.request.Request(f"{metrics_url}/raftmon/faults", method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=2):
            pass
    except (OSError, urllib.error.URLError):
        pass
