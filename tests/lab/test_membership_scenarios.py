"""The membership scenarios' values: what each run measured, beyond its alerts and checks.

The runs happen once per session with the other lab runs (conftest.lab_results);
test_scenarios.py checks their alerts and that every check passed. Values only, no timing.
"""

from __future__ import annotations

import pytest

from lab.runtime import RunResult
from tests.lab.conftest import explain

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(900)]


@pytest.mark.parametrize("run", ["replace-member", "replace-member-control", "replace-member-etcd"])
def test_a_replacement_loses_no_acknowledged_write_and_catches_up_by_snapshot(
    run: str, lab_results: dict[str, RunResult]
) -> None:
    m = lab_results[run].measurements
    assert m.get("acknowledged_writes", 0) > 0, explain(lab_results[run])
    assert m.get("missing_writes") == 0, explain(lab_results[run])
    assert m.get("snapshots_sent", 0) >= 1, explain(lab_results[run])
    assert len(m.get("member_list", [])) == 3, explain(lab_results[run])


@pytest.mark.parametrize("run", ["grow", "grow-control", "grow-etcd"])
def test_grow_prints_the_courses_quorum_table_from_the_metrics(
    run: str, lab_results: dict[str, RunResult]
) -> None:
    rows = lab_results[run].measurements.get("membership_table", [])
    table = [(r["voters"], r["learners"], r["quorum"], r["failures_tolerated"]) for r in rows]
    assert table == [
        (3, 0, 2, 1),
        (3, 1, 2, 1),  # a learner adds no vote and no fault tolerance
        (4, 0, 3, 1),  # 4 voters tolerate one failure, like 3
        (4, 1, 3, 1),
        (5, 0, 3, 2),
    ], explain(lab_results[run])


def test_grow_keeps_writing_with_two_of_five_down(lab_results: dict[str, RunResult]) -> None:
    for run in ("grow", "grow-etcd"):
        window = lab_results[run].measurements.get("two of five down", {})
        assert window.get("ok", 0) > 0, explain(lab_results[run])
        assert lab_results[run].measurements.get("missing_writes") == 0, explain(lab_results[run])


def test_even_members_split_two_two_writes_nowhere(lab_results: dict[str, RunResult]) -> None:
    result = lab_results["even-members"]
    sides = result.measurements.get("partitioned", [])
    assert [len(s["members"]) for s in sides] == [2, 2], explain(result)
    assert all(s["ok"] == 0 for s in sides), explain(result)
    (row,) = result.measurements.get("membership_table", [])
    assert (row["voters"], row["quorum"], row["failures_tolerated"]) == (4, 3, 1), explain(result)
