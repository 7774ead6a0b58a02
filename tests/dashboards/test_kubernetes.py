"""dashboards/out/kubernetes/: one ConfigMap per board that the API server accepts unchanged,
`kubectl apply` can store, and kube-prometheus-stack's Grafana sidecar picks up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import generate
from tests.alerts.schemas import structural
from tests.dashboards.boards import OUT

K8S_DIR = OUT / "kubernetes"
CONFIGMAPS = sorted(K8S_DIR.glob("*.yaml"))

# core/v1 ConfigMap (k8s.io/api/core/v1 types.go): data keys are `[-._a-zA-Z0-9]+`.
CONFIG_MAP: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"enum": ["v1"]},
        "kind": {"enum": ["ConfigMap"]},
        "metadata": structural.OBJECT_META,
        "immutable": {"type": "boolean"},
        "data": {
            "type": "object",
            "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]+$", "maxLength": 253},
            "additionalProperties": {"type": "string"},
        },
        "binaryData": {
            "type": "object",
            "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]+$", "maxLength": 253},
            "additionalProperties": {"type": "string"},
        },
    },
}
# kubectl apply keeps the whole object in the last-applied-configuration annotation, and the
# API server caps a resource's annotations at 256 KiB (TotalAnnotationSizeLimitB).
ANNOTATION_LIMIT_BYTES = 256 * 1024


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def test_one_configmap_file_per_board() -> None:
    boards = sorted(p.stem for p in OUT.glob("*.json"))
    assert [p.stem for p in CONFIGMAPS] == boards
    fresh = generate.kubernetes_files({name: (OUT / f"{name}.json").read_text() for name in boards})
    for rel, text in fresh.items():
        assert (OUT / rel).read_text() == text, f"{rel} is stale: run `make dashboards`"


@pytest.mark.parametrize("path", CONFIGMAPS, ids=lambda p: p.name)
def test_configmap_is_valid_and_fits_kubectl_apply(path: Path) -> None:
    doc = _load(path)
    errors = structural.validate_fragment(doc, CONFIG_MAP)
    assert errors == [], "\n".join(errors)
    assert len(json.dumps(doc, separators=(",", ":")).encode()) < ANNOTATION_LIMIT_BYTES


@pytest.mark.parametrize("path", CONFIGMAPS, ids=lambda p: p.name)
def test_configmap_carries_its_board_for_the_grafana_sidecar(path: Path) -> None:
    doc = _load(path)
    assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert doc["metadata"]["annotations"]["grafana_folder"] == generate.FOLDER
    ((key, text),) = doc["data"].items()
    assert key == f"raftmon-{path.stem}.json"
    assert text == (OUT / f"{path.stem}.json").read_text()


def test_the_combined_configmap_file_holds_the_same_configmaps() -> None:
    """dashboards/out/configmap.yaml (what the READMEs apply) and kubernetes/ never differ."""
    combined = list(yaml.safe_load_all((OUT / "configmap.yaml").read_text()))
    assert combined == [_load(p) for p in CONFIGMAPS]


def test_validator_rejects_an_unknown_configmap_field() -> None:
    doc = _load(CONFIGMAPS[0])
    doc["datas"] = doc.pop("data")
    (error,) = structural.validate_fragment(doc, CONFIG_MAP)
    assert "'datas' was unexpected" in error
