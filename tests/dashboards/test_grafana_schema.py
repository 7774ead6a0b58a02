"""dashboards/out/*.json type-check as Grafana's published dashboard schema (@grafana/schema).

Each board is written into a .ts file as an object literal assigned to `DashboardJSON`
(tests/dashboards/grafana_wire.ts), and one `tsc --noEmit` run checks them all: an unknown
field, a wrong type, a missing required field or a value outside an enum fails the build.
`make node` (part of `make test`) installs package.json's @grafana/schema and typescript.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.dashboards.boards import OUT
from tests.helpers import require_tool

REPO = Path(__file__).resolve().parents[2]
WIRE = Path(__file__).resolve().parent / "grafana_wire.ts"
TSC = REPO / "node_modules" / "typescript" / "bin" / "tsc"
SCHEMA_PACKAGE = REPO / "node_modules" / "@grafana" / "schema" / "package.json"
BOARDS = sorted(OUT.glob("*.json"))
_ERROR = re.compile(r"^(?P<file>[^(\s]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<text>.*)$")

# Boards that Grafana's schema must reject, each with the error tsc gives: proof that the
# check sees unknown fields, enum values and types, not only that it runs.
BROKEN: dict[str, tuple[str, str]] = {
    "unknown_panel_field": ("panels.0.titel", "'\"titel\"' does not exist"),
    "enum_value": ("panels.0.fieldConfig.defaults.thresholds.mode", "not assignable"),
    "wrong_type": ("schemaVersion", "not assignable to type 'number'"),
}


def _require_node_modules() -> Path:
    require_tool("node")
    require_tool("npm")
    if not (TSC.exists() and SCHEMA_PACKAGE.exists()):
        message = "node_modules lacks typescript or @grafana/schema: run `make node` (npm ci)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return TSC


def _set(board: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    node: Any = board
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value


def _broken_boards() -> dict[str, dict[str, Any]]:
    values = {"unknown_panel_field": "typo", "enum_value": "absolut", "wrong_type": "39"}
    out = {}
    for name, (dotted, _) in BROKEN.items():
        board = json.loads((OUT / "overview.json").read_text())
        _set(board, dotted, values[name])
        out[name] = board
    return out


def _write_board(directory: Path, name: str, board: dict[str, Any]) -> Path:
    path = directory / f"{name}.ts"
    path.write_text(
        f"import type {{ DashboardJSON }} from {json.dumps(str(WIRE.with_suffix('')))};\n"
        f"export const board: DashboardJSON = {json.dumps(board, indent=2, sort_keys=True)};\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def tsc_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One tsc run over every board and every broken board: file stem -> its errors."""
    tsc = _require_node_modules()
    directory = tmp_path_factory.mktemp("grafana-schema")
    files = [_write_board(directory, b.stem, json.loads(b.read_text())) for b in BOARDS]
    files += [_write_board(directory, f"broken_{n}", b) for n, b in _broken_boards().items()]
    config = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "module": "esnext",
            "moduleResolution": "bundler",
            "target": "es2022",
            "skipLibCheck": True,
            "typeRoots": [],
        },
        "files": [str(WIRE), *map(str, files)],
    }
    (directory / "tsconfig.json").write_text(json.dumps(config, indent=2))
    result = subprocess.run(
        ["node", str(tsc), "-p", str(directory), "--pretty", "false"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=directory,
    )
    assert result.returncode in (0, 2), result.stdout + result.stderr  # 2: errors reported
    errors: dict[str, list[str]] = {p.stem: [] for p in files}
    for line in result.stdout.splitlines():
        match = _ERROR.match(line)
        if match is None:
            continue  # an elaboration line of the error above
        stem = Path(match["file"]).stem
        assert stem in errors, f"tsc reports an error outside the boards: {line}"
        source = (directory / f"{stem}.ts").read_text().splitlines()
        where = source[int(match["line"]) - 1].strip()
        errors[stem].append(f"line {match['line']}: {match['text']}  <- {where}")
    return errors


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.stem)
def test_board_type_checks_as_grafanas_dashboard(
    board: Path, tsc_errors: dict[str, list[str]]
) -> None:
    assert tsc_errors[board.stem] == [], "\n".join(tsc_errors[board.stem])


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_field_grafana_would_reject_fails_the_check(
    name: str, tsc_errors: dict[str, list[str]]
) -> None:
    _, expected = BROKEN[name]
    errors = tsc_errors[f"broken_{name}"]
    assert errors, f"{name}: tsc accepted a broken board"
    assert any(expected in e for e in errors), errors


def test_the_schema_package_is_the_pinned_one() -> None:
    _require_node_modules()
    package = json.loads((REPO / "package.json").read_text())
    installed = json.loads(SCHEMA_PACKAGE.read_text())
    assert installed["version"] == package["devDependencies"]["@grafana/schema"]
