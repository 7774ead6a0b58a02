"""`raftmon cluster` as a user runs it: real processes, commands on stdin, endpoints file.

The command is driven through a pipe, as a script would drive it: it must read commands
from a non-terminal stdin too, prefix member logs with the member's name, keep
endpoints.json true after a restart, restart a paused member, and leave no member
process behind on `quit`.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.children import spawn
from lab.procs import wait_until
from tests.cluster.conftest import FAST
from tests.helpers import alive, mentioning, require_tool

pytestmark = [pytest.mark.cluster]


class ClusterCommand:
    """The `raftmon cluster` process with a reader thread, so every wait is bounded."""

    def __init__(self, data_dir: Path, flags: tuple[str, ...] = ("--size=3",)) -> None:
        self.proc: subprocess.Popen[str] = spawn(
            [sys.executable, "-m", "lab", "cluster", *flags, f"--data-dir={data_dir}",
             "--", *FAST],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        tail = "".join(self.seen[-40:])
        raise AssertionError(f"no line with {text!r} within {timeout}s; last output:\n{tail}")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def pids(data_dir: Path) -> dict[str, int]:
    info = json.loads((data_dir / "endpoints.json").read_text())
    return {m["name"]: m["pid"] for m in info["members"]}


def test_cluster_command_takes_commands_from_a_pipe_and_stops_everything(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "cluster"
    cmd = ClusterCommand(data_dir)
    try:
        cmd.wait_for("ready; leader")
        assert any(line.startswith(("m1 | ", "m2 | ", "m3 | ")) for line in cmd.seen), (
            "member logs are streamed with the member's name as prefix"
        )
        endpoints = (data_dir / "endpoints").read_text().strip().split(",")
        assert len(endpoints) == 3
        assert all(e.startswith("http://127.0.0.1:") for e in endpoints)
        started = pids(data_dir)
        assert all(alive(pid) for pid in started.values())

        cmd.send("status")
        cmd.wait_for("<- leader")

        cmd.send("pause m2")
        cmd.wait_for("pause m2: done")
        cmd.send("restart m2")  # a paused member must be woken to act on SIGTERM
        cmd.wait_for("restart m2: done")
        assert not alive(started["m2"])
        restarted = pids(data_dir)
        assert restarted["m2"] != started["m2"], "endpoints.json names the new process"
        assert alive(restarted["m2"])

        cmd.send("kill m3")
        cmd.wait_for("kill m3: done")
        assert not alive(started["m3"])
        cmd.send("restart m3")
        cmd.wait_for("restart m3: done")

        cmd.send("restart m9")
        cmd.wait_for("error: \"no member named 'm9'\"")

        members = pids(data_dir)
        cmd.send("quit")
        cmd.wait_for("stopping cluster")
        assert cmd.proc.wait(timeout=30) == 0
        assert not any(alive(pid) for pid in members.values())
    finally:
        cmd.close()


def test_a_cluster_command_killed_with_sigkill_leaves_no_member_behind(tmp_path: Path) -> None:
    """No shutdown path runs in a SIGKILLed `raftmon cluster`: the kernel ends its members."""
    data_dir = tmp_path / "cluster"
    cmd = ClusterCommand(data_dir, ("--size=3", "--quiet"))
    try:
        cmd.wait_for("ready; leader")
        members = pids(data_dir)
        assert all(alive(pid) for pid in members.values())
        cmd.proc.kill()
        assert cmd.proc.wait(timeout=10) == -signal.SIGKILL
        wait_until(
            "every member of the killed command ends",
            lambda: not any(alive(pid) for pid in members.values()),
            timeout=15,
        )
        assert not mentioning(str(data_dir)), "a process still runs on the cluster's data"
    finally:
        cmd.close()


def test_cluster_tls_prints_a_curl_command_that_works_as_written(tmp_path: Path) -> None:
    curl = require_tool("curl")
    cmd = ClusterCommand(tmp_path / "c", ("--size=1", "--tls", "--quiet"))
    try:
        cmd.wait_for("cluster of 1 ready")
        line = cmd.wait_for("curl --cacert ")
        argv = shlex.split(line.strip())
        assert argv[0] == "curl"
        put_url = argv[7].replace("/range", "/put")
        body = '{"key":"Zm9v","value":"YQ=="}'
        put = subprocess.run(
            [curl, *argv[1:7], put_url, "-d", body], capture_output=True, text=True, timeout=20
        )
        assert put.returncode == 0, put.stderr
        out = subprocess.run([curl, *argv[1:]], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert '"value":"YQ=="' in out.stdout, out.stdout
        info = json.loads((tmp_path / "c" / "endpoints.json").read_text())
        assert info["endpoints"][0].startswith("https://127.0.0.1:")
        assert Path(info["tls"]["cacert"]).is_file()
        cmd.send("quit")
        assert cmd.proc.wait(timeout=30) == 0
    finally:
        cmd.close()


def _readme_block(heading: str, language: str) -> list[str]:
    """The lines of the first ```language block under a README heading."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index(heading) :]
    start = section.index(f"```{language}\n") + len(language) + 4
    return section[start : section.index("```", start)].strip().splitlines()


def test_the_readme_security_commands_work_as_written(tmp_path: Path) -> None:
    """The TLS cluster, curl, raftmon load and etcdctl with certificates of the README, verbatim."""
    require_tool("curl")
    require_tool("etcdctl")
    lines = _readme_block("## Security", "sh")
    start, setup, commands = lines[0], lines[1], lines[2:]
    assert start.startswith(".venv/bin/raftmon cluster ")
    assert "--tls" in start
    argv = shlex.split(start)[2:]
    at = argv.index("--data-dir")
    assert argv[at + 1] == "var/cluster"
    flags = tuple(argv[:at] + argv[at + 2 :])  # the data dir goes under tmp_path instead
    cmd = ClusterCommand(tmp_path / "var" / "cluster", (*flags, "--quiet"))
    raftmon = f"{shlex.quote(sys.executable)} -m lab"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    try:
        cmd.wait_for("cluster of 3 ready")
        outputs = []
        for line in commands:
            script = f"{setup}\n{line.replace('.venv/bin/raftmon', raftmon)}"
            run = subprocess.run(
                ["bash", "-c", script], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            outputs.append((line, run.returncode, run.stdout))
        put, rng, no_cert, load, etcdctl = outputs
        assert (put[1], '"revision"' in put[2]) == (0, True), put
        assert (rng[1], '"value":"YmFy"' in rng[2]) == (0, True), rng
        assert no_cert[1] != 0, no_cert  # refused without a client certificate
        assert no_cert[2] == "", no_cert
        assert load[1] == 0, load
        assert (etcdctl[1], etcdctl[2]) == (0, "foo\nbar\n"), etcdctl  # gRPC over mTLS
        cmd.send("quit")
        assert cmd.proc.wait(timeout=30) == 0
    finally:
        cmd.close()
