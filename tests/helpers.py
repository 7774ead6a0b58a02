"""Helpers shared by tests that use real tools, processes and sockets.

Processes start through the lab's harness (`lab.children.spawn`, `lab.cluster`,
`lab.etcd_cluster`), so they die with the test run however it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.children import spawn
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.procs import free_ports

# Test timings: 50 ms heartbeat, 500 ms election timeout, so elections and request
# timeouts resolve quickly; behaviour is etcd's either way (members and etcd alike).
FAST = ["--heartbeat-interval=50", "--election-timeout=500"]


def require_tool(name: str) -> str:
    """Path of a real tool (promtool, amtool, prometheus, etcd, ...); fail under CI if missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install it with `make tools` (Debian packages)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on loopback."""
    return free_ports(1, host)[0]


def start_cluster(
    base: Path, size: int, extra: list[str] | None = None, *, tls: bool = False
) -> LocalCluster:
    """A started raftmon cluster with test timings; on a failed start, the logs' tail."""
    cluster = LocalCluster(base, size, extra_args=[*FAST, *(extra or [])], tls=tls)
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs_tail())
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def running_cluster(
    base: Path, size: int, extra: list[str] | None = None
) -> Iterator[LocalCluster]:
    """`start_cluster`, always stopped at the end."""
    cluster = start_cluster(base, size, extra)
    try:
        yield cluster
    finally:
        cluster.stop()


def etcd_cluster(base: Path, size: int = 1) -> EtcdCluster:
    """A real etcd 3.4 cluster with test timings (not started: use it as a context manager)."""
    return EtcdCluster(require_tool("etcd"), base, size=size, extra_args=FAST)


def alive(pid: int) -> bool:
    """True while process `pid` runs; a zombie is gone for our purposes (it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process (Linux /proc)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        if stat[0] != "Z":
            table[int(entry.name)] = (int(stat[1]), cmdline)
    return table


def descendants(pid: int) -> dict[int, str]:
    """Children, grandchildren, ... of `pid` that are alive now: pid -> command line."""
    table = _processes()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmdline) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmdline
                frontier.append(child)
    return found


def mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line contains `text` (a data dir): pid -> command line."""
    return {pid: cmd for pid, (_, cmd) in _processes().items() if text in cmd}


def http_get_status(url: str, timeout: float = 2.0) -> int:
    """HTTP status of a GET, 0 when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@contextlib.contextmanager
def running_until_ready(
    argv: list[str], log_path: Path, ready_url: str, what: str, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a real server (Prometheus, Alertmanager, ...), wait for `ready_url` to answer
    200 (bounded), yield it, and always stop it: SIGTERM, then SIGKILL after 15 s.
    A start that fails or times out fails the test with the tail of the server's log."""
    with log_path.open("wb") as log:
        process: subprocess.Popen[bytes] = spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while http_get_status(ready_url) != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    pytest.fail(f"{what} not ready:\n{tail}")
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
