"""Every process the lab or a test starts dies with its parent, however the parent ends.

- the spawner: a child started from a thread that then finishes keeps running (the
  kernel's parent-death signal follows the forking *thread*; the harness forks on one
  long-lived thread);
- `raftmon lab` killed with SIGKILL: its members, Prometheus and Alertmanager end;
- a test-style parent (a Python process that started members, etcd, Prometheus and
  Alertmanager through the harness) stopped with SIGTERM: nothing is left, both when it
  unwinds in order (`interrupt_on_signals`) and when it dies at once (no handler).
(`raftmon cluster` killed with SIGKILL: tests/cluster/test_cluster_cli.py.)
Processes are found by pid (the parent's descendants while it ran) and by data dir.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from lab.children import spawn
from lab.procs import wait_until
from tests.helpers import alive, descendants, mentioning, require_tool

pytestmark = [pytest.mark.cluster]


def _all_end(pids: dict[int, str], what: str) -> None:
    """Bounded wait until none of `pids` runs; the failure names the survivors."""
    try:
        wait_until(what, lambda: not any(alive(pid) for pid in pids), timeout=20)
    except TimeoutError:
        survivors = {pid: cmd for pid, cmd in pids.items() if alive(pid)}
        raise AssertionError(f"{what}: still running {survivors}") from None


def _kinds(procs: dict[int, str]) -> set[str]:
    """Which of member, prometheus, alertmanager and etcd the command lines are."""
    kinds = set()
    for cmd in procs.values():
        argv0 = cmd.split(" ", 1)[0]
        if " -m node " in cmd:
            kinds.add("member")
        elif argv0.endswith("/prometheus-alertmanager"):
            kinds.add("alertmanager")
        elif argv0.endswith("/prometheus"):
            kinds.add("prometheus")
        elif argv0.endswith("/etcd"):
            kinds.add("etcd")
    return kinds


def test_a_child_spawned_from_a_finished_thread_keeps_running() -> None:
    started: list[subprocess.Popen[bytes]] = []
    worker = threading.Thread(target=lambda: started.append(spawn(["sleep", "60"])))
    worker.start()
    worker.join(timeout=10)
    (child,) = started
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.5)  # the forking thread is gone; the child is not
    finally:
        child.kill()
        child.wait(timeout=10)


def test_raftmon_lab_killed_with_sigkill_leaves_no_member_prometheus_or_alertmanager(
    tmp_path: Path,
) -> None:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    lab = spawn(
        [sys.executable, "-m", "lab", "lab", "member-down", "--quiet", f"--data-dir={tmp_path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wanted = {"member", "prometheus", "alertmanager"}

        def running() -> bool:
            assert lab.poll() is None, f"the lab ended first (exit {lab.returncode})"
            return wanted <= _kinds(descendants(lab.pid))

        wait_until("the lab runs members, Prometheus and Alertmanager", running, 120, 0.3)
        started = descendants(lab.pid)
    finally:
        lab.kill()
        lab.wait(timeout=10)
    _all_end(started, "every process of the killed lab ends")
    assert not mentioning(str(tmp_path))


PARENT = """
import sys, time
from pathlib import Path
from lab.children import interrupt_on_signals
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from lab.prom import LabStack

base, orderly = Path(sys.argv[1]), sys.argv[2] == "orderly"
stack = LabStack(base / "stack")
cluster = LocalCluster(base / "raftmon", 1)
etcd = EtcdCluster(sys.argv[3], base / "etcd", size=1)
def run():
    try:
        stack.start()
        cluster.start()
        etcd.start()
        print("ready", flush=True)
        time.sleep(600)
    finally:
        etcd.stop()
        cluster.stop()
        stack.stop()
if orderly:
    with interrupt_on_signals():
        try:
            run()
        except KeyboardInterrupt:
            pass
else:
    run()
"""


@pytest.mark.tools
@pytest.mark.parametrize("mode", ["orderly", "abrupt"])
def test_a_test_style_parent_stopped_with_sigterm_leaves_nothing(tmp_path: Path, mode: str) -> None:
    etcd = require_tool("etcd")
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    parent = spawn(
        [sys.executable, "-c", textwrap.dedent(PARENT), str(tmp_path), mode, etcd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert parent.stdout is not None
    out = parent.stdout

    def pump() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        seen = []
        while "ready\n" not in seen:  # bounded: each line within the start-up budget
            try:
                seen.append(lines.get(timeout=90))
            except queue.Empty:
                raise AssertionError("the parent is not ready:\n" + "".join(seen)) from None
        started = descendants(parent.pid)
        assert {"member", "etcd", "prometheus", "alertmanager"} <= _kinds(started), started
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
    assert code == (0 if mode == "orderly" else -signal.SIGTERM)
    _all_end(started, f"every process of the parent ({mode}) ends")
    assert not mentioning(str(tmp_path))
