"""The lab scenarios end to end: the alert fired, reached the right receiver, and its
control run stayed silent. Values and events only; no timing is asserted.

The runs themselves happen once per session (conftest.lab_results); each test reads one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.runtime import RunResult
from lab.scenarios import MEMBERSHIP_ALERTS, SCENARIOS
from tests.lab.conftest import explain, slow_on_etcd

pytestmark = [pytest.mark.cluster, pytest.mark.tools, pytest.mark.timeout(900)]

# run -> (alert, receiver) pairs that must have been delivered while firing.
ROUTED: dict[str, list[tuple[str, str]]] = {
    "slow-disk": [("etcdWALFsyncSlow", "ticket")],
    "leader-flapping": [("etcdLeaderChangesTooFrequent", "page")],
    "member-down": [("etcdMembersDown", "ticket")],
    "member-down-etcd": [("etcdMembersDown", "ticket")],
    "quorum-loss": [("etcdInsufficientMembers", "page"), ("etcdNoLeader", "page")],
    "quorum-loss-etcd": [("etcdInsufficientMembers", "page"), ("etcdNoLeader", "page")],
    "partitions-3": [("etcdNoLeader", "page")],
    "partitions-4": [("etcdNoLeader", "page")],
    "slow-network": [("etcdMemberCommunicationSlow", "ticket")],
    "quota": [("etcdNoSpaceAlarm", "page"), ("etcdDatabaseQuotaLowSpace", "page")],
    "replace-member": [("etcdMembersDown", "ticket")],
    "replace-member-etcd": [("etcdMembersDown", "ticket")],
    "grow": [("etcdMembersDown", "ticket")],
    "grow-etcd": [("etcdMembersDown", "ticket")],
    "even-members": [("etcdEvenNumberOfMembers", "ticket"), ("etcdNoLeader", "page")],
}
# control run -> alerts that must never have fired nor reached any receiver.
SILENT: dict[str, list[str]] = {
    "slow-disk-control": ["etcdWALFsyncSlow"],
    "leader-flapping-control": ["etcdLeaderChangesTooFrequent"],
    "replace-member-control": MEMBERSHIP_ALERTS,
    "grow-control": MEMBERSHIP_ALERTS,
    "even-members-control": ["etcdEvenNumberOfMembers", "etcdInsufficientMembers"],
}
RUNS = [r.run for s in SCENARIOS.values() for r in s.runs]


def test_every_run_has_an_expectation() -> None:
    assert sorted(RUNS) == sorted([*ROUTED, *SILENT])


def _routed(result: RunResult, alert: str, receiver: str) -> bool:
    return any(
        n.alertname == alert and n.receiver == receiver and n.status == "firing"
        for n in result.notifications
    )


@pytest.mark.parametrize("run", slow_on_etcd(sorted(ROUTED)))
def test_fault_fires_its_alert_and_routes_it(run: str, any_run: Callable[[str], RunResult]) -> None:
    result = any_run(run)
    for alert, receiver in ROUTED[run]:
        assert _routed(result, alert, receiver), (
            f"{alert} never reached {receiver}\n{explain(result)}"
        )
    assert result.ok, explain(result)


@pytest.mark.parametrize("run", sorted(SILENT))
def test_control_run_stays_silent(run: str, lab_results: dict[str, RunResult]) -> None:
    result = lab_results[run]
    for alert in SILENT[run]:
        assert not any(n.alertname == alert for n in result.notifications), explain(result)
        assert not any(
            e.kind == "firing" and e.data.get("alertname") == alert for e in result.events
        ), explain(result)
    assert result.ok, explain(result)


def test_quorum_loss_keeps_every_acknowledged_write(lab_results: dict[str, RunResult]) -> None:
    for run in ("quorum-loss", "quorum-loss-etcd"):
        m = lab_results[run].measurements
        assert m.get("acknowledged_writes", 0) > 0, explain(lab_results[run])
        assert m.get("missing_after_restart") == 0, explain(lab_results[run])


def test_partitions_show_the_odd_number_lesson(lab_results: dict[str, RunResult]) -> None:
    three, four = lab_results["partitions-3"], lab_results["partitions-4"]
    sides3 = {len(s["members"]): s for s in three.measurements.get("partitioned", [])}
    assert sides3[2]["ok"] > 0, explain(three)  # the majority keeps writing
    assert sides3[1]["ok"] == 0, explain(three)  # the lone member cannot
    sides4 = four.measurements.get("partitioned", [])
    assert [len(s["members"]) for s in sides4] == [2, 2], explain(four)
    assert all(s["ok"] == 0 for s in sides4), explain(four)  # 2 of 4 is no quorum
