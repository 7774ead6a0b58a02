"""The rendered mixin: committed outputs are up to date, the config is one source of truth,
the lab variant is an override, and every metric an expression reads exists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alerts import render
from alerts.config import mixin_config, recording_rules, thresholds
from exporter.catalog import series_names
from tests.alerts.mixin_files import (
    ALERTS_DIR,
    JSONNET_FILES,
    RULE_FILES,
    RUNBOOKS_DIR,
    alert_rules,
    metric_names,
    recorded_names,
    rules,
)
from tests.helpers import require_tool

# Names an expression may read that the raftmon exporter does not expose, with the reason.
NOT_IN_CATALOG = {
    "up": "synthetic series Prometheus writes for every scrape target",
}


def test_rendering_reproduces_the_committed_outputs_byte_for_byte(tmp_path: Path) -> None:
    """`raftmon mixin --out DIR` writes exactly the committed alerts/out/ files."""
    assert render.main(["--out", str(tmp_path)]) == 0
    fresh = {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    committed = {name: (render.OUT_DIR / name).read_bytes() for name in fresh}
    assert sorted(fresh) == sorted(render.render_all()), "a second rendering gives the same files"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], "run `make mixin` and commit alerts/out/"


def test_lab_alertmanager_webhook_placeholder_is_replaced() -> None:
    text = render.render_lab_alertmanager("http://127.0.0.1:18080/hook/")
    assert render.LAB_WEBHOOK_PLACEHOLDER not in text
    assert "url: http://127.0.0.1:18080/hook/page" in text
    assert "url: http://127.0.0.1:18080/hook/ticket" in text
    committed = (render.OUT_DIR / "lab" / "alertmanager.yml").read_text(encoding="utf-8")
    assert f"{render.LAB_WEBHOOK_PLACEHOLDER}/page" in committed


def test_thresholds_come_from_config_libsonnet() -> None:
    values = thresholds()
    assert values["walFsyncSlow.averageSeconds"] == 0.025
    assert values["leaderChangesTooFrequent.perMinute"] == 1.0
    assert values["highFsyncDurations.warningSeconds"] == 0.128
    assert values["memberCommunicationSlow.p99Seconds"] == 0.1024
    assert all(isinstance(v, float) for v in values.values())


def test_the_alert_expressions_use_the_configured_thresholds() -> None:
    exprs = {r["alert"]: r["expr"] for r in alert_rules() if r["labels"]["severity"] == "warning"}
    assert exprs["etcdWALFsyncSlow"].endswith("> 0.025")
    assert "> 0.128" in exprs["etcdHighFsyncDurations"]


def test_lab_variant_changes_durations_only() -> None:
    """The lab is an override of _config: the same thresholds, shorter windows and `for`."""
    normal, lab = thresholds(), thresholds(lab=True)
    changed = {k for k in normal if normal[k] != lab[k]}
    # The per-minute line and the growth horizon are the two time-based numbers.
    assert changed == {
        "leaderChangesTooFrequent.perMinute",
        "excessiveDatabaseGrowth.horizonSeconds",
    }
    normal_alerts = [(r["alert"], r["labels"]) for r in alert_rules()]
    lab_alerts = [(r["alert"], r["labels"]) for r in alert_rules(lab=True)]
    assert normal_alerts == lab_alerts
    assert recorded_names() == recorded_names(lab=True)
    for rule in alert_rules(lab=True):
        assert rule["for"].endswith("s"), f"{rule['alert']} for {rule['for']} in the lab"
    assert mixin_config(lab=True)["recordingWindow"].endswith("s")


def test_recording_rule_names_follow_level_metric_operations() -> None:
    names = recording_rules()
    assert set(names) == recorded_names()
    for name in names:
        parts = name.split(":")
        assert len(parts) == 3, name
        assert all(parts), name


def test_every_runbook_belongs_to_an_alert() -> None:
    alerts = {r["alert"] for r in alert_rules()}
    runbooks = {p.stem for p in RUNBOOKS_DIR.glob("*.md")}
    assert runbooks == alerts


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(ALERTS_DIR)))
def test_every_metric_an_expression_reads_is_in_the_exporter_catalog(path: object) -> None:
    known = series_names() | recorded_names() | set(NOT_IN_CATALOG)
    unknown = {
        (rule.get("alert") or rule.get("record"), name)
        for rule in rules(path)  # type: ignore[arg-type]
        for name in metric_names(rule["expr"])
        if name not in known
    }
    assert unknown == set()


def test_metric_name_extraction_skips_functions_labels_and_keywords() -> None:
    expr = (
        'max without (source) (label_replace(sum without (instance, pod) (up{job=~"x"} == bool 0),'
        ' "source", "up", "", "") or count without (To) (rate(a_total{x="y"}[2m]) > 0.01))'
        " unless on (cluster, job) b:rec:sum > 1e3"
    )
    assert metric_names(expr) == {"up", "a_total", "b:rec:sum"}


@pytest.mark.tools
def test_jsonnet_files_are_jsonnetfmt_clean() -> None:
    jsonnetfmt = require_tool("jsonnetfmt")
    style = ["-n", "2", "--max-blank-lines", "2", "--string-style", "s", "--comment-style", "s"]
    result = subprocess.run(
        [jsonnetfmt, "--test", *style, *map(str, JSONNET_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"run jsonnetfmt -i {' '.join(style)}: {result.stdout}{result.stderr}"
    )
    assert len(JSONNET_FILES) >= 10


# ---- Counted events (u.eventCount in alerts/lib/utils.libsonnet) -----------------------------
# The scrape intervals the comment on u.eventCount promises exact counts for: up to 30 s in
# production (the course uses 15-30 s), 1 s in the lab.
SCRAPE_SECONDS = {False: 30, True: 1}
_UNITS = {"s": 1, "m": 60, "h": 3600}


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * _UNITS[duration[-1]]


def _counted_thresholds(lab: bool) -> dict[str, tuple[str, float]]:
    """(window, largest count that must stay silent) of every alert that counts events."""
    c = mixin_config(lab)
    per_minute = c["leaderChangesTooFrequent"]
    return {
        # A 5-member cluster: the most members the comment vouches for.
        "etcdHighNumberOfLeaderChanges": (
            c["highNumberOfLeaderChanges"]["window"],
            5 * c["highNumberOfLeaderChanges"]["changesPerMember"],
        ),
        "etcdLeaderChangesTooFrequent": (
            per_minute["window"],
            per_minute["perMinute"] * _seconds(per_minute["window"]) / 60,
        ),
        "etcdHighNumberOfFailedProposals": (
            c["failedProposals"]["window"],
            c["failedProposals"]["maxFailures"],
        ),
        "etcdHeartbeatSendFailures": (
            c["heartbeatSendFailures"]["window"],
            c["heartbeatSendFailures"]["maxFailures"],
        ),
        "etcdSlowApplies": (c["slowApplies"]["window"], c["slowApplies"]["maxSlow"]),
        "etcdSlowReadIndexes": (c["slowReadIndexes"]["window"], c["slowReadIndexes"]["maxSlow"]),
        "etcdFailedReadIndexes": (
            c["failedReadIndexes"]["window"],
            c["failedReadIndexes"]["maxFailed"],
        ),
    }


@pytest.mark.parametrize("lab", [False, True], ids=["normal", "lab"])
def test_event_counts_are_exact_at_the_configured_thresholds(lab: bool) -> None:
    """floor(increase()) is the observed count while N * d < window - d (see u.eventCount):
    a threshold raised past that bound would let N events read as N + 1 again."""
    d = SCRAPE_SECONDS[lab]
    inexact = {
        name: (window, n)
        for name, (window, n) in _counted_thresholds(lab).items()
        if not n * d < _seconds(window) - d
    }
    assert inexact == {}, f"thresholds beyond the exact bound at a {d} s scrape interval"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(ALERTS_DIR)))
def test_every_increase_in_the_rules_is_a_floored_event_count(path: Path) -> None:
    """increase() extrapolates to the window's edges; compared with a count it must be floored."""
    bare = [
        rule.get("alert") or rule.get("record")
        for rule in rules(path)
        if rule["expr"].count("increase(") != rule["expr"].count("floor(increase(")
    ]
    assert bare == []
    counted = {
        r.get("alert") or r.get("record") for r in rules(path) if "floor(increase(" in r["expr"]
    }
    names = set(_counted_thresholds(lab="lab" in path.parts)) - {"etcdLeaderChangesTooFrequent"}
    if path.name == "prometheus_alerts.yaml":
        assert counted == names
    else:
        assert counted == {"cluster:etcd_server_leader_changes_seen:per_minute"}
