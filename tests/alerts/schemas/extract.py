"""Extract the openAPIV3Schema of the prometheus-operator CRDs raftmon ships resources for.

Usage (from a prometheus-operator checkout at the tag named in README.md):

    python tests/alerts/schemas/extract.py PROMETHEUS_OPERATOR_DIR

Writes `prometheus-operator/<kind>.<version>.json` next to this file. Schema `description`
strings are dropped (they are four fifths of the bytes and no validator reads them); a
property that happens to be *named* description is a schema object, not a string, and stays.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

CRDS = ["alertmanagerconfigs", "podmonitors", "prometheusrules", "servicemonitors"]
OUT = Path(__file__).resolve().parent / "prometheus-operator"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads a bare `=` (a matchType enum value) as the string YAML 1.2 sees."""


def _value_as_str(loader: _Loader, node: yaml.Node) -> str:
    return loader.construct_yaml_str(node)


_Loader.add_constructor("tag:yaml.org,2002:value", _value_as_str)


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip_descriptions(v)
            for k, v in node.items()
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_descriptions(item) for item in node]
    return node


def main(argv: list[str]) -> int:
    src = Path(argv[0]) / "example" / "prometheus-operator-crd"
    for plural in CRDS:
        crd = yaml.load((src / f"monitoring.coreos.com_{plural}.yaml").read_text(), Loader=_Loader)
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strip_descriptions(version["schema"]["openAPIV3Schema"])
            doc = {
                "group": crd["spec"]["group"],
                "kind": kind,
                "version": version["name"],
                "operatorVersion": crd["metadata"]["annotations"]["operator.prometheus.io/version"],
                "openAPIV3Schema": schema,
            }
            path = OUT / f"{kind.lower()}.{version['name']}.json"
            path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
