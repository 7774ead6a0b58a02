"""The dashboards' fault-only queries, checked in the lab while each fault lasts.

tests/dashboards/test_live.py proves that every other panel query has data on a healthy,
loaded cluster and lists the rest in FAULT_ONLY (annotations are exempt there too). Here,
from the session's lab runs (conftest.lab_results): each run's dashboard checks (the
committed boards' expressions, through lab.panels, against the lab Prometheus for
the run's cluster) passed, together they cover every FAULT_ONLY panel and every
annotation, and each FAULT_ONLY reason quotes a check that really passed in the run it
names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from lab import panels
from lab.runtime import RunResult
from lab.scenarios import all_runs
from tests.dashboards.test_live import FAULT_ONLY
from tests.lab.conftest import explain, slow_on_etcd

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(900)]

SPECS = {spec.run: spec for spec in all_runs() if spec.dashboards}
# lab run `quota`: "dashboard: 'Which alarms ...' shows the NOSPACE alarm"
_QUOTED_CHECK = re.compile(r'lab run `([\w-]+)`[^"]*"(dashboard: [^"]+)"')


def _passed(result: RunResult) -> set[tuple[str, str]]:
    return {key for check in result.checks if check.ok for key in check.panels}


@pytest.mark.parametrize("run", slow_on_etcd(sorted(SPECS)))
def test_run_shows_its_fault_on_the_dashboards(
    run: str, any_run: Callable[[str], RunResult]
) -> None:
    result = any_run(run)
    passed = _passed(result)
    for ref in SPECS[run].dashboards:
        missing = sorted(set(ref.keys()) - passed)
        assert not missing, f"{ref}: no passing dashboard check for {missing}\n{explain(result)}"


def test_lab_checks_cover_every_fault_only_panel_and_annotation(
    lab_results: dict[str, RunResult],
) -> None:
    passed = set().union(*(_passed(r) for r in lab_results.values()))
    wanted = set(FAULT_ONLY) | {(q.board, q.title) for q in panels.all_annotations()}
    missing = sorted(wanted - passed)
    assert not missing, f"fault-only items no lab run showed with data: {missing}"


@pytest.mark.parametrize("key", sorted(FAULT_ONLY))
def test_fault_only_reason_quotes_a_check_that_passed(
    key: tuple[str, str], lab_results: dict[str, RunResult]
) -> None:
    quoted = _QUOTED_CHECK.search(FAULT_ONLY[key])
    assert quoted, f"{key}: the reason quotes no lab check: {FAULT_ONLY[key]!r}"
    run, text = quoted.groups()
    result = lab_results[run]
    assert any(c.ok and c.text == text and key in c.panels for c in result.checks), (
        f"{key}: no passing check {text!r} in run {run}\n{explain(result)}"
    )
