"""alerts/out/kubernetes/: fresh, valid against the prometheus-operator CRD schemas as the API
server applies them (tests/alerts/schemas/), and the same rules and routing as the plain files."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import render
from alerts.config import mixin_config
from tests.alerts.mixin_files import OUT_DIR, load_yaml
from tests.alerts.schemas import structural
from tests.helpers import require_tool

K8S_DIR = OUT_DIR / "kubernetes"
MANIFESTS = sorted(K8S_DIR.rglob("*.yaml"))
KINDS = {
    "prometheusrule.yaml": "PrometheusRule",
    "alertmanagerconfig.yaml": "AlertmanagerConfig",
    "scrape/servicemonitor.yaml": "ServiceMonitor",
    "scrape/servicemonitor-tls.yaml": "ServiceMonitor",
    "scrape/podmonitor.yaml": "PodMonitor",
}


def _rel(path: Path) -> str:
    return str(path.relative_to(K8S_DIR))


def _crd(manifest: dict[str, Any]) -> structural.CRDSchema:
    return structural.load(manifest["kind"], manifest["apiVersion"].split("/")[-1])


def _manifest(rel: str) -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(K8S_DIR / rel)
    return doc


def test_kubernetes_outputs_are_the_committed_files_and_nothing_else() -> None:
    fresh = render.render_kubernetes()
    assert sorted(fresh) == sorted(f"kubernetes/{_rel(p)}" for p in MANIFESTS), (
        "alerts/out/kubernetes/ holds a file the mixin no longer renders (or misses one)"
    )
    stale = [rel for rel, text in fresh.items() if (OUT_DIR / rel).read_text() != text]
    assert stale == [], "run `make mixin` and commit alerts/out/kubernetes/"
    assert {_rel(p) for p in MANIFESTS} == set(KINDS)


@pytest.mark.parametrize("path", MANIFESTS, ids=_rel)
def test_manifest_validates_against_its_crd_schema(path: Path) -> None:
    manifest = load_yaml(path)
    assert manifest["kind"] == KINDS[_rel(path)]
    errors = structural.validate(manifest, _crd(manifest))
    assert errors == [], "\n".join(errors)


def test_nested_alertmanager_routes_validate_against_the_route_schema() -> None:
    """The CRD keeps child routes as unknown fields; the operator decodes each as a Route and
    rejects the resource if one does not fit, so they are checked against the route schema."""
    manifest = _manifest("alertmanagerconfig.yaml")
    spec_schema = _crd(manifest).schema["properties"]["spec"]
    route_schema = spec_schema["properties"]["route"]
    children = manifest["spec"]["route"]["routes"]
    assert children, "the routing has child routes to check"
    for i, child in enumerate(children):
        errors = structural.validate_fragment(child, route_schema, f".spec.route.routes[{i}]")
        assert errors == [], "\n".join(errors)


def test_prometheusrule_carries_every_group_of_the_plain_rule_files() -> None:
    spec = _manifest("prometheusrule.yaml")["spec"]
    plain = (
        load_yaml(OUT_DIR / "prometheus_rules.yaml")["groups"]
        + load_yaml(OUT_DIR / "prometheus_alerts.yaml")["groups"]
    )
    assert spec["groups"] == plain


@pytest.mark.tools
def test_prometheusrule_groups_pass_promtool_check_rules(tmp_path: Path) -> None:
    """The operator's admission webhook parses spec.groups with Prometheus' rule parser."""
    promtool = require_tool("promtool")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_manifest("prometheusrule.yaml")["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


_MATCHER_KEYS = {"sourceMatch": "source_matchers", "targetMatch": "target_matchers"}


def _snake(key: str) -> str:
    return _MATCHER_KEYS.get(key) or re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def _as_alertmanager_yml(value: Any, key: str = "") -> Any:
    """The AlertmanagerConfig spec spelled back in alertmanager.yml's words."""
    if key in ("matchers", "source_matchers", "target_matchers"):
        return [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in value]
    if isinstance(value, dict):
        return {_snake(k): _as_alertmanager_yml(v, _snake(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_alertmanager_yml(item) for item in value]
    return value


def test_alertmanagerconfig_routes_exactly_as_alertmanager_yml() -> None:
    spec = _manifest("alertmanagerconfig.yaml")["spec"]
    assert _as_alertmanager_yml(spec) == load_yaml(OUT_DIR / "alertmanager.yml")


def test_every_receiver_a_route_names_is_defined() -> None:
    spec = _manifest("alertmanagerconfig.yaml")["spec"]
    defined = {r["name"] for r in spec["receivers"]}
    named = {spec["route"]["receiver"]} | {r["receiver"] for r in spec["route"]["routes"]}
    assert named <= defined


SCRAPE_EXAMPLES = [rel for rel in KINDS if rel.startswith("scrape/")]


@pytest.mark.parametrize("rel", SCRAPE_EXAMPLES)
def test_scrape_examples_give_targets_the_job_and_cluster_the_mixin_selects(rel: str) -> None:
    manifest = _manifest(rel)
    (endpoint,) = manifest["spec"].get("endpoints") or manifest["spec"]["podMetricsEndpoints"]
    targets = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    config = mixin_config()
    job_regex = re.fullmatch(r'job=~"(.*)"', config["etcdSelector"])
    assert job_regex, config["etcdSelector"]
    assert re.fullmatch(job_regex.group(1), targets["job"]["replacement"])
    assert targets[config["clusterLabel"]]["sourceLabels"]


def test_resources_carry_the_kube_prometheus_stack_release_label() -> None:
    for path in MANIFESTS:
        assert load_yaml(path)["metadata"]["labels"]["release"] == "kube-prometheus-stack", path


# ---- the validator itself: each Kubernetes rule it claims to honour rejects a bad resource ----


def _rule_manifest() -> dict[str, Any]:
    return copy.deepcopy(_manifest("prometheusrule.yaml"))


def _errors(manifest: dict[str, Any]) -> str:
    return "\n".join(structural.validate(manifest, _crd(_manifest("prometheusrule.yaml"))))


def test_validator_reports_a_field_kubernetes_would_prune() -> None:
    manifest = _rule_manifest()
    manifest["spec"]["groups"][0]["rules"][0]["labls"] = {"severity": "warning"}
    assert "'labls' was unexpected" in _errors(manifest)
    assert "prune" in _errors(manifest)


def test_validator_reports_a_duplicate_list_map_key() -> None:
    manifest = _rule_manifest()
    manifest["spec"]["groups"].append(copy.deepcopy(manifest["spec"]["groups"][0]))
    assert "duplicate keys ['name']" in _errors(manifest)


def test_validator_applies_patterns_and_required_fields() -> None:
    manifest = _rule_manifest()
    rule = manifest["spec"]["groups"][1]["rules"][0]
    rule["for"] = "10 minutes"
    del rule["expr"]
    errors = _errors(manifest)
    assert "'10 minutes' does not match" in errors
    assert "'expr' is a required property" in errors


def test_validator_reads_go_case_insensitive_patterns() -> None:
    manifest = _rule_manifest()
    manifest["spec"]["groups"][0]["partial_response_strategy"] = "WARN"
    assert _errors(manifest) == ""
    manifest["spec"]["groups"][0]["partial_response_strategy"] = "ignore"
    assert "does not match" in _errors(manifest)


def test_validator_accepts_an_int_or_string_and_rejects_other_types() -> None:
    manifest = _rule_manifest()
    manifest["spec"]["groups"][0]["rules"][0]["expr"] = 1
    assert _errors(manifest) == ""
    manifest["spec"]["groups"][0]["rules"][0]["expr"] = ["up"]
    assert "expr" in _errors(manifest)


def test_validator_checks_object_meta_and_the_api_version() -> None:
    manifest = _rule_manifest()
    manifest["apiVersion"] = "monitoring.coreos.com/v1beta1"
    manifest["metadata"]["name"] = "Raftmon_Etcd"
    manifest["metadata"]["labels"]["release"] = "not a label value"
    manifest["metadata"]["finalizer"] = "x"
    errors = _errors(manifest)
    assert "'monitoring.coreos.com/v1beta1' is not 'monitoring.coreos.com/v1'" in errors
    assert "'Raftmon_Etcd' does not match" in errors
    assert "'not a label value' does not match" in errors
    assert "'finalizer' was unexpected" in errors


def test_validator_refuses_to_pass_a_cel_rule_it_cannot_evaluate() -> None:
    schema = {
        "type": "object",
        "properties": {"roleArn": {"type": "string"}, "externalId": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "!has(self.externalId) || has(self.roleArn)"}],
    }
    (error,) = structural.validate_fragment({"externalId": "x"}, schema)
    assert "CEL" in error


def test_validator_checks_set_lists_for_duplicates() -> None:
    manifest = copy.deepcopy(_manifest("alertmanagerconfig.yaml"))
    manifest["spec"]["route"]["groupBy"].append("cluster")
    errors = structural.validate(manifest, _crd(manifest))
    assert any("set has duplicates" in e for e in errors), errors


def test_stored_schemas_name_the_operator_release_the_readme_names() -> None:
    readme = (structural.SCHEMAS_DIR.parent / "README.md").read_text()
    for kind, version in [
        ("PrometheusRule", "v1"),
        ("AlertmanagerConfig", "v1alpha1"),
        ("ServiceMonitor", "v1"),
        ("PodMonitor", "v1"),
    ]:
        crd = structural.load(kind, version)
        assert crd.group == "monitoring.coreos.com"
        assert f"v{crd.operator_version}" in readme, kind


def test_the_install_page_names_every_generated_file() -> None:
    page = (K8S_DIR.parents[2] / "docs" / "kubernetes.md").read_text()
    named = set(re.findall(r"`(alerts/out/kubernetes/[\w/.-]+\.yaml)`", page))
    assert named == {f"alerts/out/kubernetes/{rel}" for rel in KINDS}
    assert "dashboards/out/kubernetes/" in page
