"""The README's member replacement, run as written against `raftmon cluster`.

`raftmon cluster` starts as the README's etcdctl section starts it; `kill m3` is typed
at its prompt (a machine that died); then the replacement block runs in one bash
session: remove m3, `member add m4`, start m4 from the printed ETCD_* variables with an
empty data dir, read through m4, list the members. Each output is compared with the
README's after `loosen` (ports, ids, row order). The README's fixed ports for m4 are
swapped for free ones so the test never collides with anything.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lab.procs import free_ports
from tests.cluster.test_cluster_cli import ClusterCommand
from tests.etcdctl.test_readme_etcdctl import MARK, README, console_steps, loosen, transcript
from tests.helpers import mentioning, require_tool

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(300)]

HEADING = "### Replace a failed member, grow the cluster (etcdctl `member`)"
README_PORTS = ("23479", "23480")


def steps() -> list[tuple[str, str]]:
    text = README.read_text()
    return console_steps(text[text.index(HEADING) :])


def same_order(text: str) -> str:
    """ETCD_INITIAL_CLUSTER lists members in the order of their random ids: sort it."""

    def sort(m: re.Match[str]) -> str:
        return f'ETCD_INITIAL_CLUSTER="{",".join(sorted(m.group(1).split(",")))}"'

    return re.sub(r'ETCD_INITIAL_CLUSTER="([^"]*)"', sort, text)


def test_the_readme_member_replacement_works_as_written(tmp_path: Path) -> None:
    require_tool("etcdctl")
    commands = steps()
    assert [c for c, _ in commands][:3] == [
        "export ETCDCTL_ENDPOINTS=$(cut -d, -f1,2 var/cluster/endpoints)",
        "etcdctl put /foo bar",
        "etcdctl member remove $(etcdctl member list | awk -F', ' '$3 == \"m3\" {print $1}')",
    ]
    start, _ = transcript()
    argv = shlex.split(start)
    at = argv.index("--data-dir")
    flags = tuple(argv[2:at] + argv[at + 2 :])
    cmd = ClusterCommand(tmp_path / "var" / "cluster", (*flags, "--quiet"))
    ports = [str(p) for p in free_ports(2)]
    # the block runs .venv/bin/raftmon from the repository's root, as a reader does
    (tmp_path / ".venv").symlink_to(Path(__file__).parents[2] / ".venv")
    try:
        cmd.wait_for("cluster of 3 ready")
        cmd.wait_for("endpoints: http://127.0.0.1:")
        cmd.send("kill m3")
        cmd.wait_for("kill m3: done")
        # etcd's strict reconfiguration check (raftmon's too) refuses `member add` as
        # "unhealthy cluster" until every voter has been connected for 5 s: a reader
        # replacing a member that died is well past that; a test that just started is not
        time.sleep(6)
        script = []
        for command, _ in commands:
            for readme_port, port in zip(README_PORTS, ports, strict=True):
                command = command.replace(readme_port, port)
            script.append(f"{command}\necho {MARK}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        run = subprocess.run(
            ["bash", "-e", "-c", "\n".join(script)], cwd=tmp_path, capture_output=True,
            text=True, timeout=120, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outputs = run.stdout.split(f"{MARK}\n")[: len(commands)]
        for (command, expected), got in zip(commands, outputs, strict=True):
            assert loosen(same_order(got)) == loosen(same_order(expected)), f"$ {command}\n{got}"
        cmd.send("quit")
        assert cmd.proc.wait(timeout=30) == 0
    except BaseException:
        log, env_file = tmp_path / "var" / "m4.log", tmp_path / "var" / "m4.env"
        print(env_file.read_text() if env_file.exists() else "no m4.env")
        print(log.read_text()[-5000:] if log.exists() else "no m4.log")
        raise
    finally:
        # m4 was started by the block in the background, with a relative --data-dir:
        # it is found by its own peer URL, whose port only this run used
        for pid in mentioning(f"--listen-peer-urls http://127.0.0.1:{ports[1]}"):
            os.kill(pid, signal.SIGKILL)
        cmd.close()
