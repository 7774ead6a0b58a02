"""The mixin's thresholds for Python readers: one source of truth in config.libsonnet.

The dashboards draw the 25 ms fsync line, the 1-per-minute leader-change line and the
rest from here, so a threshold changed in `_config` moves the alert and the panel together.
"""

from __future__ import annotations

from typing import Any

from alerts._jsonnet_eval import evaluate


def mixin_config(lab: bool = False) -> dict[str, Any]:
    """The whole `_config` object (selectors, windows, `for`, severities, thresholds)."""
    config: dict[str, Any] = evaluate("config", lab=lab)
    return config


def _numbers(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _numbers(f"{prefix}.{key}" if prefix else key, item, out)


def thresholds(lab: bool = False) -> dict[str, float]:
    """Every numeric `_config` value, keyed by its dotted path.

    Examples: `thresholds()["walFsyncSlow.averageSeconds"] == 0.025`,
    `thresholds()["leaderChangesTooFrequent.perMinute"] == 1.0`,
    `thresholds()["highFsyncDurations.warningSeconds"] == 0.128`.
    """
    out: dict[str, float] = {}
    _numbers("", mixin_config(lab), out)
    return out


def recording_rules(lab: bool = False) -> dict[str, str]:
    """Recorded series name -> PromQL expression, for dashboards that read recorded series."""
    rules = evaluate("rules", lab=lab)
    return {
        rule["record"]: rule["expr"].strip()
        for group in rules["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
