"""Alertmanager routing: amtool validates the config and resolves every severity to its
receiver; the inhibition rules (which amtool cannot test) are parsed and evaluated here
against the real alert labels, and a real Alertmanager confirms the outcome."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.mixin_files import ALERTMANAGER_FILES, ALERTS_DIR, alert_rules, load_yaml
from tests.alerts.web import request, serving
from tests.helpers import free_port, require_tool

ROUTES = [
    ({"severity": "critical", "alertname": "etcdNoLeader", "cluster": "a"}, "page"),
    ({"severity": "warning", "alertname": "etcdWALFsyncSlow", "cluster": "a"}, "ticket"),
    ({"severity": "info", "alertname": "etcdDatabaseQuotaLowSpace", "cluster": "a"}, "null"),
    ({"alertname": "SomethingWithoutSeverity"}, "ticket"),
]
_ids = [str(p.relative_to(ALERTS_DIR)) for p in ALERTMANAGER_FILES]


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = require_tool("amtool")
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.tools
@pytest.mark.parametrize("path", ALERTMANAGER_FILES, ids=_ids)
def test_amtool_check_config_is_clean(path: Path) -> None:
    result = _amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.tools
@pytest.mark.parametrize("path", ALERTMANAGER_FILES, ids=_ids)
@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=[r for _, r in ROUTES])
def test_amtool_routes_each_severity_to_its_receiver(
    path: Path, labels: dict[str, str], receiver: str
) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={path}",
        f"--verify.receivers={receiver}",
        *pairs,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


@pytest.mark.parametrize("path", ALERTMANAGER_FILES, ids=_ids)
def test_notifications_are_grouped_by_cluster_and_alertname(path: Path) -> None:
    route = load_yaml(path)["route"]
    assert route["group_by"] == ["cluster", "alertname"]
    receivers = {r["name"]: r for r in load_yaml(path)["receivers"]}
    assert set(receivers) == {"page", "ticket", "null"}
    assert "webhook_configs" not in receivers["null"], "info goes nowhere"


def test_lab_alertmanager_notifies_within_seconds_at_the_placeholder() -> None:
    route = load_yaml(ALERTMANAGER_FILES[1])["route"]
    assert route["group_wait"] == "1s"
    assert route["group_interval"] == "5s"
    urls = [
        c["url"]
        for r in load_yaml(ALERTMANAGER_FILES[1])["receivers"]
        for c in r.get("webhook_configs", [])
    ]
    assert urls == [
        "http://raftmon-lab-webhook.invalid/page",
        "http://raftmon-lab-webhook.invalid/ticket",
    ]


# ---- Inhibitions, evaluated the way Alertmanager does -----------------------------------------
_MATCHER = re.compile(r'^(?P<name>\w+)(?P<op>=~|!~|!=|=)"(?P<value>.*)"$')


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    m = _MATCHER.match(matcher)
    assert m, f"unparsable matcher {matcher!r}"
    value = labels.get(m["name"], "")
    if m["op"] == "=":
        return value == m["value"]
    if m["op"] == "!=":
        return value != m["value"]
    full = re.fullmatch(m["value"], value) is not None
    return full if m["op"] == "=~" else not full


def _inhibited(rules: list[dict[str, Any]], source: dict[str, str], target: dict[str, str]) -> bool:
    """Whether firing `source` silences `target` under any rule. Alertmanager does not let an
    alert that matches both sides be inhibited by another that does too."""
    for rule in rules:
        src = all(_matches(m, source) for m in rule["source_matchers"])
        tgt = all(_matches(m, target) for m in rule["target_matchers"])
        both = src and all(_matches(m, target) for m in rule["source_matchers"]) and tgt
        equal = all(source.get(name, "") == target.get(name, "") for name in rule["equal"])
        if src and tgt and equal and not both:
            return True
    return False


def _alert(rule: dict[str, Any], cluster: str, instance: str = "m1") -> dict[str, str]:
    labels = {"alertname": rule["alert"], "cluster": cluster, "job": "etcd", **rule["labels"]}
    if rule["labels"]["scope"] == "member":
        labels["instance"] = instance
    return labels


@pytest.fixture(params=ALERTMANAGER_FILES, ids=_ids)
def inhibit_rules(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = load_yaml(request.param)["inhibit_rules"]
    return rules


def test_inhibition_rules_have_the_expected_matchers(inhibit_rules: list[dict[str, Any]]) -> None:
    quorum_loss, no_leader, members_down, tiers = inhibit_rules
    outages = 'alertname!~"etcdInsufficientMembers|etcdNoLeader"'
    assert quorum_loss["source_matchers"] == ['alertname=~"etcdInsufficientMembers"']
    assert quorum_loss["target_matchers"] == ['scope="member"', outages]
    assert quorum_loss["equal"] == ["cluster"]
    # etcdNoLeader fires per member: it silences that member's noise only.
    assert no_leader["source_matchers"] == ['alertname=~"etcdNoLeader"']
    assert no_leader["target_matchers"] == ['scope="member"', outages]
    assert no_leader["equal"] == ["cluster", "instance"]
    assert members_down["source_matchers"] == ['alertname="etcdInsufficientMembers"']
    assert members_down["target_matchers"] == ['alertname="etcdMembersDown"']
    assert members_down["equal"] == ["cluster"]
    assert tiers["source_matchers"] == ['severity="critical"']
    assert tiers["equal"] == ["alertname", "cluster", "instance"]


def test_quorum_loss_silences_member_alerts_of_every_member_of_that_cluster_only(
    inhibit_rules: list[dict[str, Any]],
) -> None:
    rules = alert_rules()
    source = _alert(next(r for r in rules if r["alert"] == "etcdInsufficientMembers"), "a")
    for rule in rules:
        member_noise = rule["labels"]["scope"] == "member" and rule["alert"] != "etcdNoLeader"
        expected = member_noise or rule["alert"] == "etcdMembersDown"
        for instance in ("m1", "m2"):
            target = _alert(rule, "a", instance)
            assert _inhibited(inhibit_rules, source, target) == expected, (rule["alert"], instance)
        other = _alert(rule, "b", "m2")
        assert not _inhibited(inhibit_rules, source, other), f"{rule['alert']} in another cluster"


def test_a_member_without_a_leader_silences_its_own_member_alerts_only(
    inhibit_rules: list[dict[str, Any]],
) -> None:
    rules = alert_rules()
    source = _alert(next(r for r in rules if r["alert"] == "etcdNoLeader"), "a", "m1")
    for rule in rules:
        member_noise = rule["labels"]["scope"] == "member" and rule["alert"] != "etcdNoLeader"
        own = _alert(rule, "a", "m1")
        assert _inhibited(inhibit_rules, source, own) == member_noise, rule["alert"]
        # Its healthy peers and any cluster-level alert stay visible.
        peer = _alert(rule, "a", "m2")
        assert not _inhibited(inhibit_rules, source, peer), f"{rule['alert']} on a healthy peer"
        other = _alert(rule, "b", "m1")
        assert not _inhibited(inhibit_rules, source, other), f"{rule['alert']} in another cluster"


def test_quorum_loss_silences_members_down_and_no_leader_stays_visible(
    inhibit_rules: list[dict[str, Any]],
) -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    quorum = _alert(rules["etcdInsufficientMembers"], "a")
    assert _inhibited(inhibit_rules, quorum, _alert(rules["etcdMembersDown"], "a"))
    assert not _inhibited(inhibit_rules, quorum, _alert(rules["etcdMembersDown"], "b"))
    no_leader = _alert(rules["etcdNoLeader"], "a", "m1")
    assert not _inhibited(inhibit_rules, no_leader, _alert(rules["etcdNoLeader"], "a", "m2"))
    assert not _inhibited(inhibit_rules, quorum, no_leader)


def test_a_critical_tier_silences_the_lower_tiers_of_the_same_alert_and_member(
    inhibit_rules: list[dict[str, Any]],
) -> None:
    critical = {
        "alertname": "etcdHighFsyncDurations",
        "severity": "critical",
        "scope": "member",
        "cluster": "a",
        "instance": "m1",
    }
    warning = {**critical, "severity": "warning"}
    assert _inhibited(inhibit_rules, critical, warning)
    assert not _inhibited(inhibit_rules, critical, {**warning, "instance": "m2"})
    assert not _inhibited(inhibit_rules, critical, {**warning, "alertname": "etcdWALFsyncSlow"})


# ---- The same inhibitions in a real Alertmanager ----------------------------------------------
READY_TIMEOUT_S = 30.0
INHIBIT_TIMEOUT_S = 10.0


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """Debian's Alertmanager on a free loopback port with alerts/out/alertmanager.yml."""
    flags = [
        f"--config.file={ALERTMANAGER_FILES[0]}",
        f"--storage.path={tmp_path / 'data'}",
        "--cluster.listen-address=",
    ]
    with serving("prometheus-alertmanager", free_port(), flags, tmp_path, READY_TIMEOUT_S) as base:
        yield base


def _key(labels: dict[str, str]) -> tuple[str, str, str]:
    return labels["alertname"], labels["cluster"], labels.get("instance", "")


@pytest.mark.tools
def test_alertmanager_scopes_no_leader_to_its_member_and_quorum_loss_to_its_cluster(
    alertmanager: str,
) -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    # (alert, cluster, instance) -> whether Alertmanager must report it inhibited.
    expected = {
        # Cluster a: m1 lost its leader (a partitioned minority member).
        ("etcdNoLeader", "a", "m1"): False,
        ("etcdHighNumberOfFailedProposals", "a", "m1"): True,
        ("etcdHighNumberOfFailedProposals", "a", "m2"): False,
        ("etcdWALFsyncSlow", "a", "m2"): False,
        ("etcdMembersDown", "a", ""): False,
        # Cluster b lost quorum: every member's noise and the down count go quiet.
        ("etcdInsufficientMembers", "b", ""): False,
        ("etcdMembersDown", "b", ""): True,
        ("etcdWALFsyncSlow", "b", "m2"): True,
        ("etcdHighNumberOfFailedProposals", "b", "m3"): True,
        ("etcdNoLeader", "b", "m3"): False,
        # Cluster c is healthy apart from a slow disk.
        ("etcdWALFsyncSlow", "c", "m1"): False,
    }
    posted = [
        {"labels": _alert(rules[name], cluster, instance or "m1")}
        for name, cluster, instance in expected
    ]
    status, _ = request(f"{alertmanager}/api/v2/alerts", posted)
    assert status == 200
    # The inhibitor consumes posted alerts asynchronously: wait for the expected state.
    deadline = time.monotonic() + INHIBIT_TIMEOUT_S
    while True:
        status, body = request(f"{alertmanager}/api/v2/alerts")
        alerts = json.loads(body) if status == 200 else []
        seen = {_key(alert["labels"]): bool(alert["status"]["inhibitedBy"]) for alert in alerts}
        if seen == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen == expected
