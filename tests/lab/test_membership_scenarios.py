"""The membership scenarios' values: what each run measured, beyond its alerts and checks.

The runs happen once per session with the other lab runs (conftest.lab_results);
test_scenarios.py checks their alerts and that every check passed. Values only, no timing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.runtime import RunResult
from tests.lab.conftest import explain, slow_on_etcd

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(900)]


@pytest.mark.parametrize(
    "run", slow_on_etcd(["replace-member", "replace-member-control", "replace-member-etcd"])
)
def test_a_replacement_loses_no_acknowledged_write_and_catches_up_by_snapshot(
    run: str, any_run: Callable[[str], RunResult]
) -> None:
    result = any_run(run)
    m = result.measurements
    assert m.get("acknowledged_writes", 0) > 0, explain(result)
    assert m.get("missing_writes") == 0, explain(result)
    assert m.get("snapshots_sent", 0) >= 1, explain(result)
    assert len(m.get("member_list", [])) == 3, explain(result)


@pytest.mark.parametrize("run", slow_on_etcd(["grow", "grow-control", "grow-etcd"]))
def test_grow_prints_the_courses_quorum_table_from_the_metrics(
    run: str, any_run: Callable[[str], RunResult]
) -> None:
    result = any_run(run)
    rows = result.measurements.get("membership_table", [])
    table = [(r["voters"], r["learners"], r["quorum"], r["failures_tolerated"]) for r in rows]
    assert table == [
        (3, 0, 2, 1),
        (3, 1, 2, 1),  # a learner adds no vote and no fault tolerance
        (4, 0, 3, 1),  # 4 voters tolerate one failure, like 3
        (4, 1, 3, 1),
        (5, 0, 3, 2),
    ], explain(result)


@pytest.mark.parametrize("run", slow_on_etcd(["grow", "grow-etcd"]))
def test_grow_keeps_writing_with_two_of_five_down(
    run: str, any_run: Callable[[str], RunResult]
) -> None:
    result = any_run(run)
    window = result.measurements.get("two of five down", {})
    assert window.get("ok", 0) > 0, explain(result)
    assert result.measurements.get("missing_writes") == 0, explain(result)


def test_even_members_split_two_two_writes_nowhere(lab_results: dict[str, RunResult]) -> None:
    result = lab_results["even-members"]
    sides = result.measurements.get("partitioned", [])
    assert [len(s["members"]) for s in sides] == [2, 2], explain(result)
    assert all(s["ok"] == 0 for s in sides), explain(result)
    (row,) = result.measurements.get("membership_table", [])
    assert (row["voters"], row["quorum"], row["failures_tolerated"]) == (4, 3, 1), explain(result)
