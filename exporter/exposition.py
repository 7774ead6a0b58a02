"""Text exposition (format 0.0.4) that keeps etcd's family names exactly.

prometheus_client's `generate_latest` always writes a counter's `# TYPE` as `<name>_total`,
so etcd's suffix-less counters (`etcd_server_health_failures`, ...) cannot come out as
etcd writes them. This writer takes the exposed name from the samples instead: a
counter whose samples are named `<family>_total` is exposed as `<family>_total`, one whose
samples carry the bare family name is exposed bare. Otherwise it writes what
`generate_latest` writes, with three differences that match etcd (Go's client):
families are sorted by name, families without samples are omitted, and `_created`
samples are never written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "exposed_name", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Go's float formatting (+Inf, 1.048576e+06, ...), as prometheus_client implements it.
_go_float: Callable[[float], str] = floatToGoString

_SKIPPED_SUFFIXES = ("_created", "_gsum", "_gcount")
_TYPE_NAMES = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}


def exposed_name(metric: Metric) -> str:
    """The family name a `# TYPE` line must carry for this collected family."""
    if metric.type == "counter":
        total = metric.name + "_total"
        if any(sample.name == total for sample in metric.samples):
            return total
    return metric.name


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# Rendered label sets, keyed by the sample's label items in order. Children and bucket
# bounds repeat every scrape, so after the first one a sample's labels cost a dict lookup.
_label_cache: dict[tuple[tuple[str, str], ...], str] = {}
_LABEL_CACHE_MAX = 100_000  # ~ a few MB; cleared (not evicted) if a label explodes


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    key = tuple(labels.items())
    text = _label_cache.get(key)
    if text is None:
        # Go's client sorts label names; `le`/`quantile` come last, after the family's.
        names = sorted(k for k in labels if k not in ("le", "quantile"))
        names.extend(k for k in ("le", "quantile") if k in labels)
        text = "{" + ",".join(f'{k}="{_escape_value(labels[k])}"' for k in names) + "}"
        if len(_label_cache) >= _LABEL_CACHE_MAX:
            _label_cache.clear()
        _label_cache[key] = text
    return text


def _family(metric: Metric) -> tuple[str, list[str]] | None:
    """(exposed name, lines) of one family; None when it has nothing to expose."""
    skipped = tuple(metric.name + suffix for suffix in _SKIPPED_SUFFIXES)
    samples = [
        f"{sample.name}{_labels(sample.labels)} {_go_float(sample.value)}\n"
        for sample in metric.samples
        if sample.name not in skipped
    ]
    if not samples:
        return None
    name = exposed_name(metric)
    kind = _TYPE_NAMES.get(metric.type, metric.type)
    header = [f"# HELP {name} {_escape_help(metric.documentation)}\n", f"# TYPE {name} {kind}\n"]
    return name, header + samples


def render(registry: Collector) -> bytes:
    """Serialise every family the registry collects, etcd-style."""
    families = [family for family in map(_family, registry.collect()) if family is not None]
    families.sort(key=lambda family: family[0])
    return "".join(line for _, lines in families for line in lines).encode("utf-8")
