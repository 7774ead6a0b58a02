"""mixtool's alert guidelines, re-implemented (mixtool is a Go binary we cannot install),
plus the house rules: every alert has a runbook file in the four-section form."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.alerts.mixin_files import ALERTS_DIR, RUNBOOKS_DIR, alert_rules

SEVERITIES = {"critical", "warning", "info"}
SCOPES = {"member", "cluster", "global"}
SUMMARY_STYLE = re.compile(r"^[A-Z].+\.$")  # mixtool alert-summary-style
RUNBOOK_SECTIONS = ["## Meaning", "## Impact", "## Diagnosis", "## Mitigation"]
RUNBOOK_URL = re.compile(r"^https://raftmon\.example/alerts/runbooks/(?P<name>[A-Za-z0-9]+)\.md$")


def _all_alerts() -> list[dict[str, Any]]:
    return alert_rules(lab=False) + alert_rules(lab=True)


def _ids(rules: list[dict[str, Any]]) -> list[str]:
    return [f"{r['alert']}-{r['labels']['severity']}" for r in rules]


ALERTS = _all_alerts()
pytestmark = pytest.mark.parametrize("rule", ALERTS, ids=_ids(ALERTS))


def test_alert_name_is_camelcase_with_the_etcd_prefix(rule: dict[str, Any]) -> None:
    lint = yaml.safe_load((ALERTS_DIR / ".lint").read_text())
    assert "alert-name-camelcase" in lint["exclusions"], "the etcd-prefix exception is documented"
    assert re.fullmatch(r"etcd([A-Z][a-z0-9]*)+", rule["alert"]), rule["alert"]


def test_severity_is_critical_warning_or_info(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["scope"] in SCOPES


def test_summary_is_static_capitalised_and_ends_with_a_period(rule: dict[str, Any]) -> None:
    summary = rule["annotations"]["summary"]
    assert SUMMARY_STYLE.match(summary), summary
    assert "{{" not in summary, "summary must be static (mixtool alert-summary-templating)"


def test_description_is_templated_and_names_cluster_and_member(rule: dict[str, Any]) -> None:
    description = rule["annotations"]["description"]
    assert "{{" in description, "description must be templated"
    scope = rule["labels"]["scope"]
    if scope in ("member", "cluster"):
        assert "{{ $labels.cluster }}" in description
    if scope == "member":
        assert "{{ $labels.instance }}" in description
    if scope == "cluster":
        assert "{{ $labels.job }}" in description


def test_runbook_url_points_to_a_runbook_with_the_four_sections(rule: dict[str, Any]) -> None:
    match = RUNBOOK_URL.match(rule["annotations"]["runbook_url"])
    assert match, rule["annotations"]["runbook_url"]
    assert match["name"] == rule["alert"]
    text = (RUNBOOKS_DIR / f"{rule['alert']}.md").read_text(encoding="utf-8")
    positions = [text.find(section + "\n") for section in RUNBOOK_SECTIONS]
    assert all(p >= 0 for p in positions), f"missing sections in {rule['alert']}.md"
    assert positions == sorted(positions), (
        "sections in the order Meaning, Impact, Diagnosis, Mitigation"
    )
    diagnosis = text[positions[2] : positions[3]]
    assert "```promql" in diagnosis, "diagnosis has PromQL to paste"
    assert "```sh" in diagnosis, "diagnosis has commands to run"


def test_every_alert_has_a_for_duration(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
