"""The rendered rules load into a real Prometheus (Debian's) and every rule evaluates
without error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.mixin_files import RULE_FILES, load_yaml
from tests.alerts.web import request, serving
from tests.helpers import free_port

pytestmark = pytest.mark.tools
READY_TIMEOUT_S = 60.0
EVAL_TIMEOUT_S = 30.0


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    """A Prometheus on a free loopback port loading every rendered rule file (1 s evaluation)."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    flags = [f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    with serving("prometheus", port, flags, tmp_path, READY_TIMEOUT_S) as base:
        yield base


def _rule_groups(base: str) -> list[dict[str, Any]]:
    status, body = request(f"{base}/api/v1/rules")
    assert status == 200
    groups: list[dict[str, Any]] = json.loads(body)["data"]["groups"]
    return groups


def test_every_rule_group_loads_and_evaluates_healthy(prometheus: str) -> None:
    expected = {
        (str(path), group["name"]): len(group["rules"])
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
    }
    deadline = time.monotonic() + EVAL_TIMEOUT_S
    while True:
        groups = _rule_groups(prometheus)
        health = [rule["health"] for g in groups for rule in g["rules"]]
        if "unknown" not in health or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    loaded = {(g["file"], g["name"]): len(g["rules"]) for g in groups}
    assert loaded == expected
    errors = [
        (g["name"], rule["name"], rule.get("lastError"))
        for g in groups
        for rule in g["rules"]
        if rule["health"] != "ok"
    ]
    assert errors == []
