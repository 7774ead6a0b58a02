"""promtool on the rendered rules: syntax and lint clean, and the unit tests in
alerts/tests/*.yaml pass. Also checks the unit tests themselves cover every alert both
firing and silent, so a new alert cannot ship untested."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.mixin_files import (
    ALERTS_DIR,
    LAB_SCENARIO_ALERTS,
    PROMTOOL_TESTS,
    RULE_FILES,
    alert_rules,
    load_yaml,
)
from tests.helpers import require_tool

pytestmark = pytest.mark.tools


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(ALERTS_DIR)))
def test_promtool_check_rules_is_clean(path: Path) -> None:
    promtool = require_tool("promtool")
    result = _run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    result = _run([promtool, "test", "rules", *map(str, PROMTOOL_TESTS)], cwd=ALERTS_DIR / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS)


_INSTANCE = re.compile(r'instance="([^"]+)"')


def _cases(path: Path) -> list[tuple[str, bool]]:
    """(alertname, fires) for every alert_rule_test case of a promtool test file.

    A case that expects some members to fire while other members of its input stay out of
    the expectation (the "just under the threshold" member beside the "just over" one) is
    both a firing and a silent case.
    """
    doc: dict[str, Any] = load_yaml(path)
    out = []
    for test in doc["tests"]:
        inputs = {m for s in test["input_series"] for m in _INSTANCE.findall(s["series"])}
        for case in test.get("alert_rule_test", []):
            expected = case.get("exp_alerts") or []
            out.append((case["alertname"], bool(expected)))
            firing = {a["exp_labels"].get("instance") for a in expected}
            if expected and None not in firing and inputs - firing:
                out.append((case["alertname"], False))
    return out


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = [case for path in PROMTOOL_TESTS if path.name != "lab.yaml" for case in _cases(path)]
    names = {r["alert"] for r in alert_rules()}
    assert names - {name for name, fires in cases if fires} == set(), "alerts never seen firing"
    assert names - {name for name, fires in cases if not fires} == set(), "alerts never seen silent"


def test_every_severity_tier_is_seen_firing() -> None:
    fired: set[tuple[str, str]] = set()
    for path in PROMTOOL_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    fired.add((case["alertname"], alert["exp_labels"]["severity"]))
    tiers = {(r["alert"], r["labels"]["severity"]) for r in alert_rules()}
    assert tiers - fired == set()


def test_lab_variant_has_a_smoke_test_for_every_lab_scenario_alert() -> None:
    cases = _cases(ALERTS_DIR / "tests" / "lab.yaml")
    assert LAB_SCENARIO_ALERTS - {name for name, fires in cases if fires} == set()
    assert LAB_SCENARIO_ALERTS - {name for name, fires in cases if not fires} == set()


def test_every_recording_rule_has_an_expression_test() -> None:
    tested = {
        case["expr"].split("{")[0]
        for path in PROMTOOL_TESTS
        for test in load_yaml(path)["tests"]
        for case in test.get("promql_expr_test", [])
    }
    recorded = {r["record"] for r in load_yaml(RULE_FILES[0])["groups"][0]["rules"]}
    assert recorded - tested == set()
