"""`promtool check metrics` on a member's exposition reports nothing etcd's does not.

promtool's lint flags some of etcd's own names (counters without `_total`, gauges with
it, milliseconds units). Those names are the compatibility contract, so the rule is:
a problem is allowed only if promtool reports the same line for the real etcd 3.4.23
dump, or it is a `_total`-suffix remark on an etcd-named family that etcd 3.4 did not
show (etcd named it; we keep the name). Anything on a raftmon_ family fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exporter.catalog import by_name
from tests.helpers import require_tool

REFERENCE = Path(__file__).parent / "testdata" / "etcd-3.4.23-metrics.txt"

pytestmark = pytest.mark.tools


def promtool_problems(promtool: str, text: str) -> set[str]:
    """promtool's lint lines for an exposition (it prints them on stderr, exit code 3)."""
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 3), f"promtool failed: rc={done.returncode} {done.stderr}"
    return {line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()}


def _allowed_new_problem(problem: str, reference_names: set[str]) -> bool:
    name = problem.split(" ", 1)[0]
    return (
        not name.startswith("raftmon_")
        and name not in reference_names
        and by_name(name).since != "raftmon"
        and '"_total" suffix' in problem
    )


def test_promtool_reports_nothing_beyond_etcds_own_naming(exposition: str) -> None:
    promtool = require_tool("promtool")
    reference_text = REFERENCE.read_text()
    etcd_problems = promtool_problems(promtool, reference_text)
    assert etcd_problems, "the reference dump should trip promtool's _total lint"
    reference_names = {
        line.split()[2] for line in reference_text.splitlines() if line.startswith("# TYPE ")
    }
    ours = promtool_problems(promtool, exposition)
    unexplained = sorted(
        p for p in ours - etcd_problems if not _allowed_new_problem(p, reference_names)
    )
    assert unexplained == []


def test_promtool_flags_a_misnamed_family_so_silence_means_something() -> None:
    """Guard against a promtool that says nothing at all: it must flag a bad name."""
    promtool = require_tool("promtool")
    bad = "# HELP raftmon_x_total x\n# TYPE raftmon_x_total gauge\nraftmon_x_total 1\n"
    assert promtool_problems(promtool, bad)
