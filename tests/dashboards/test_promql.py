"""Every dashboard query is PromQL that Prometheus' own parser accepts (`promtool check rules`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards.boards import all_queries, load_boards, substitute
from tests.helpers import require_tool


@pytest.mark.tools
def test_promtool_accepts_every_panel_annotation_and_variable_query(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    queries = all_queries(load_boards())
    rules = [
        {
            "record": f"raftmon_dashboard_query_{i}",
            "expr": substitute(q.expr, rate="1m", cluster=".*", instance=".*"),
            "labels": {"source": str(q)},
        }
        for i, q in enumerate(queries)
    ]
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr
