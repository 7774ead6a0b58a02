"""The README's etcdctl block, run as written against `raftmon cluster`.

The block is a console transcript: `$ ` lines are commands, the lines under each are
what it printed. The test starts `raftmon cluster` as the README does (under a
temporary directory, so `var/cluster/endpoints` is where the block reads it), runs
every command in one bash session and compares each output with the README's, after
`loosen` takes out what changes from run to run: ports, ids, sizes, terms, indexes
and the order of a table's rows.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.cluster.test_cluster_cli import ClusterCommand
from tests.helpers import require_tool

pytestmark = [pytest.mark.cluster, pytest.mark.tools]

README = Path(__file__).parents[2] / "README.md"
HEADING = "### etcdctl, as the course types it"
MARK = "@@output@@"  # printed between one command's output and the next's


def transcript() -> tuple[str, list[tuple[str, str]]]:
    """The README's `raftmon cluster` command and its etcdctl block: [(command, output)]."""
    text = README.read_text()
    section = text[text.index(HEADING) :]
    [start_line] = _block(section, "sh")
    return start_line, console_steps(section)


def console_steps(section: str) -> list[tuple[str, str]]:
    """The first console block of `section` as [(command, what it printed)]."""
    lines = _block(section, "console")
    steps: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("$ "):
            steps.append((line[2:], ""))
        else:
            command, out = steps[-1]
            steps[-1] = (command, out + line + "\n")
    return steps


def _block(section: str, language: str) -> list[str]:
    """The lines of the first ```language block of `section`."""
    start = section.index(f"```{language}\n") + len(language) + 4
    return section[start : section.index("```", start)].strip().splitlines()


def loosen(text: str) -> str:
    """`text` without what differs between two runs of the same commands."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"\b[0-9a-f]{13,16}\b", "<id>", text)
    # etcdctl prints ids with %16x: an id of fewer hex digits gets spaces before it
    text = re.sub(r"\b(Member|cluster) +(?=<id>)", r"\1 ", text)
    text = re.sub(r"\b\d+(\.\d+)? [kMG]?B\b", "<size>", text)
    text = re.sub(r"took = [0-9.]+[µnm]?s", "took = <time>", text)
    rows: list[str] = []
    table: list[int] = []  # indexes of table rows
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            line = "|".join(re.sub(r"^\d+$", "<n>", c) for c in cells)
            table.append(len(rows))
        elif line.startswith("+"):
            line = "+"
        rows.append(line)
    # a table's rows come in the order of random member ids: sort all but the header
    body = table[1:]
    for i, row in zip(body, sorted(rows[i] for i in body), strict=True):
        rows[i] = row
    return "\n".join(rows)


def test_the_readme_etcdctl_block_works_as_written(tmp_path: Path) -> None:
    require_tool("etcdctl")
    start, steps = transcript()
    assert [c for c, _ in steps][1:4] == [
        "etcdctl put /foo bar",
        "etcdctl get /foo",
        "etcdctl get --consistency=s /foo",
    ], "the course's commands, as written"
    argv = shlex.split(start)
    assert argv[:2] == [".venv/bin/raftmon", "cluster"]
    at = argv.index("--data-dir")
    assert argv[at + 1] == "var/cluster"
    flags = tuple(argv[2:at] + argv[at + 2 :])
    cmd = ClusterCommand(tmp_path / "var" / "cluster", (*flags, "--quiet"))
    try:
        cmd.wait_for("cluster of 3 ready")
        cmd.wait_for("endpoints: http://127.0.0.1:")
        script = "\n".join(f"{c}\necho {MARK}" for c, _ in steps)
        run = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outputs = run.stdout.split(f"{MARK}\n")[: len(steps)]
        for (command, expected), got in zip(steps, outputs, strict=True):
            assert loosen(got) == loosen(expected), f"$ {command}\n{got}"
        cmd.send("quit")
        assert cmd.proc.wait(timeout=30) == 0
    finally:
        cmd.close()


def test_loosen_keeps_what_a_reader_compares() -> None:
    table = (
        "+---+\n| ENDPOINT | ID | DB SIZE | IS LEADER | RAFT TERM |\n+---+\n"
        "| http://127.0.0.1:2 | 0123456789abcdef | 20 kB | false | 2 |\n"
        "| http://127.0.0.1:1 | fedcba9876543210 | 119 kB | true | 2 |\n+---+\n"
    )
    loose = loosen(table)
    assert loose.splitlines()[3:5] == [
        "http://127.0.0.1:<port>|<id>|<size>|false|<n>",
        "http://127.0.0.1:<port>|<id>|<size>|true|<n>",
    ]
    assert loosen("OK\n") == "OK"


def test_loosen_ignores_the_padding_of_short_member_ids() -> None:
    """A member id of 15 hex digits is printed with two spaces before it (%16x)."""
    short = "Member  f1b2c3d4e5f6a78 added to cluster 1f1b2c3d4e5f6a78"
    full = "Member 2a1b2c3d4e5f6a78 added to cluster 1f1b2c3d4e5f6a78"
    assert loosen(short) == loosen(full)
