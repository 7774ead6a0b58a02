"""Paths and loaders shared by the alerts tests: the rendered rule files and their rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ALERTS_DIR = Path(__file__).resolve().parents[2] / "alerts"
OUT_DIR = ALERTS_DIR / "out"
LAB_DIR = OUT_DIR / "lab"
RUNBOOKS_DIR = ALERTS_DIR / "runbooks"
PROMTOOL_TESTS = sorted((ALERTS_DIR / "tests").glob("*.yaml"))
RULE_FILES = [
    OUT_DIR / "prometheus_rules.yaml",
    OUT_DIR / "prometheus_alerts.yaml",
    LAB_DIR / "prometheus_rules.yaml",
    LAB_DIR / "prometheus_alerts.yaml",
]
ALERTMANAGER_FILES = [OUT_DIR / "alertmanager.yml", LAB_DIR / "alertmanager.yml"]
JSONNET_FILES = sorted(
    p
    for p in ALERTS_DIR.rglob("*")
    if p.suffix in (".jsonnet", ".libsonnet") and "out" not in p.parts
)
# The lab scenarios (lab) rely on these alerts firing within a minute.
LAB_SCENARIO_ALERTS = {
    "etcdWALFsyncSlow",
    "etcdLeaderChangesTooFrequent",
    "etcdMembersDown",
    "etcdInsufficientMembers",
    "etcdNoLeader",
    "etcdMemberCommunicationSlow",
    "etcdDatabaseQuotaLowSpace",
    "etcdEvenNumberOfMembers",
}


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def rules(path: Path) -> list[dict[str, Any]]:
    """Every rule of a rendered rule file."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alert_rules(lab: bool = False) -> list[dict[str, Any]]:
    return rules((LAB_DIR if lab else OUT_DIR) / "prometheus_alerts.yaml")


def recorded_names(lab: bool = False) -> set[str]:
    return {r["record"] for r in rules((LAB_DIR if lab else OUT_DIR) / "prometheus_rules.yaml")}


# ---- PromQL metric-name extraction ----------------------------------------------------------
# Not a parser: PromQL here is our own, so stripping strings, label matchers, grouping clauses
# and ranges leaves identifiers that are either metric names, functions/aggregations (followed
# by "(") or keywords.
_KEYWORDS = {
    "and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (label_replace's string arguments are not names)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGE.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names
