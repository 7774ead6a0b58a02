"""The query checkers themselves catch what they claim to, so a green run means something."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards.boards import bare_metrics, metric_names, selectors, substitute
from tests.helpers import require_tool


def test_bare_metrics_finds_a_metric_written_without_a_selector() -> None:
    expr = 'sum by (instance) (rate(a_total{x="1"}[5m])) / on (instance) b_total or vector(0)'
    assert bare_metrics(expr) == ["b_total"]


def test_bare_metrics_ignores_functions_keywords_grouping_labels_and_strings() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (instance, le) (rate(h_bucket{a="or b"}[1m])))'
        " > bool 0 unless count without (pod) (x{})"
    )
    assert bare_metrics(expr) == []


def test_selectors_and_metric_names_read_every_selector() -> None:
    expr = 'a{job="j", cluster=~"$cluster"} - b{instance=~"$instance"}'
    assert selectors(expr) == [
        ("a", 'job="j", cluster=~"$cluster"'),
        ("b", 'instance=~"$instance"'),
    ]
    assert metric_names(expr) == {"a", "b"}


def test_substitute_leaves_no_variable_behind() -> None:
    expr = 'rate(a{cluster=~"$cluster", instance=~"$instance"}[$__rate_interval])'
    assert substitute(expr, rate="1m", cluster=".*", instance=".*") == (
        'rate(a{cluster=~".*", instance=~".*"}[1m])'
    )
    with pytest.raises(AssertionError):
        substitute("a[$__range]", rate="1m", cluster=".*", instance=".*")


@pytest.mark.tools
def test_promtool_rejects_an_invalid_expression(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    path = tmp_path / "bad.yaml"
    rule = {"record": "bad", "expr": "sum by (instance) (rate(a_total[1m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, timeout=60
    )
    assert result.returncode != 0
