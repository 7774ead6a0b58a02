"""Selectors and thresholds the boards share, read from the alerts mixin's `_config`.

The mixin's `config.libsonnet` is the one source of truth: the scrape selector, the
cluster and instance label names and every alert threshold come from it here, so the
25 ms line on a panel and the 25 ms `etcdWALFsyncSlow` alert cannot drift apart.

Variable conventions every query follows (the tests check them):
- member series carry `<cluster>=~"$cluster", <instance>=~"$instance"` (`member()`);
- cluster-level series (recorded `cluster:*`, `ALERTS`) carry only the cluster matcher;
- load-generator series select the generator's own job plus the cluster matcher: the
  generator is a client, not a member, so `$instance` (a member) does not apply to it;
- every range is `[$__rate_interval]` (`RATE`), so panels follow Grafana's step and the
  datasource's scrape interval instead of a fixed window.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from alerts.config import mixin_config, thresholds

__all__ = [
    "LOADGEN_JOB_SELECTOR",
    "RATE",
    "Mixin",
    "cluster",
    "loadgen",
    "member",
    "mixin",
    "threshold",
]

# Grafana's rate window: max(4 x scrape interval, step + scrape interval).
RATE = "$__rate_interval"

# The load generator's scrape job. It is not an etcd member, so it must not match the
# mixin's etcd selector (`job=~".*etcd.*"`); name its job e.g. `loadgen` or `raftmon-loadgen`.
LOADGEN_JOB_SELECTOR = 'job=~".*loadgen.*"'


@dataclass(frozen=True, slots=True)
class Mixin:
    """The parts of the mixin's `_config` the dashboards use."""

    etcd_selector: str  # e.g. job=~".*etcd.*"
    cluster_label: str  # e.g. cluster
    instance_label: str  # e.g. instance
    thresholds: dict[str, float]  # every numeric _config value by dotted path


@functools.cache
def mixin() -> Mixin:
    """Read the mixin config once per process (it is a jsonnet evaluation)."""
    config: dict[str, Any] = mixin_config()
    return Mixin(
        etcd_selector=str(config["etcdSelector"]),
        cluster_label=str(config["clusterLabel"]),
        instance_label=str(config["instanceLabel"]),
        thresholds=thresholds(),
    )


def threshold(path: str) -> float:
    """An alert threshold by its dotted `_config` path, e.g. `walFsyncSlow.averageSeconds`.

    Raises KeyError when the mixin has no such value, so a renamed threshold breaks
    generation instead of silently drawing a stale line.
    """
    return mixin().thresholds[path]


def _braces(*matchers: str) -> str:
    return "{" + ", ".join(m for m in matchers if m) + "}"


def cluster(extra: str = "") -> str:
    """`{job=~".*etcd.*", cluster=~"$cluster"[, extra]}`: cluster-level series."""
    m = mixin()
    return _braces(m.etcd_selector, f'{m.cluster_label}=~"$cluster"', extra)


def member(extra: str = "") -> str:
    """`{job=~".*etcd.*", cluster=~"$cluster", instance=~"$instance"[, extra]}`."""
    m = mixin()
    return _braces(
        m.etcd_selector,
        f'{m.cluster_label}=~"$cluster"',
        f'{m.instance_label}=~"$instance"',
        extra,
    )


def loadgen(extra: str = "") -> str:
    """`{job=~".*loadgen.*", cluster=~"$cluster"[, extra]}`: the load generator's series."""
    return _braces(LOADGEN_JOB_SELECTOR, f'{mixin().cluster_label}=~"$cluster"', extra)
