"""Generation is deterministic, and what it writes is Grafana 9+ JSON and valid provisioning."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dashboards import generate
from dashboards.panels import SCHEMA_VERSION
from tests.dashboards.boards import OUT, iter_panels, load_boards

MODERN_PANEL_TYPES = {"timeseries", "stat", "table", "heatmap", "state-timeline", "row"}
BOARDS = {"overview", "disk", "network", "loadtest"}


def test_regenerating_matches_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(OUT) for p in OUT.rglob("*") if p.is_file())
    assert generated == committed, "run `make dashboards` and commit dashboards/out/"
    for rel in generated:
        assert (tmp_path / rel).read_bytes() == (OUT / rel).read_bytes(), (
            f"{rel} differs from a fresh generation: run `make dashboards` and commit it"
        )


def test_check_mode_reports_a_stale_output(tmp_path: Path) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.main(["--out", str(tmp_path), "--check"]) == 0
    board = tmp_path / "disk.json"
    board.write_text(board.read_text().replace("25 ms", "30 ms"))
    assert generate.main(["--out", str(tmp_path), "--check"]) == 1


def test_generation_removes_the_json_of_a_deleted_board(tmp_path: Path) -> None:
    (tmp_path / "gone.json").write_text("{}")
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert not (tmp_path / "gone.json").exists()


def test_every_board_file_is_rendered_with_a_stable_uid() -> None:
    boards = load_boards()
    assert set(boards) == BOARDS
    assert {name: b["uid"] for name, b in boards.items()} == {n: f"raftmon-{n}" for n in BOARDS}


def test_boards_are_grafana_9_json() -> None:
    for name, board in load_boards().items():
        assert board["schemaVersion"] == SCHEMA_VERSION >= 36, name
        assert board["title"].startswith("raftmon / "), name
        assert [v["name"] for v in board["templating"]["list"]] == [
            "datasource",
            "cluster",
            "instance",
        ]
        ids = [p["id"] for p in iter_panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in iter_panels(board):
            where = f"{name} / {panel['title']}"
            assert panel["type"] in MODERN_PANEL_TYPES, f"{where}: {panel['type']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where
            pos = panel["gridPos"]
            assert pos["x"] >= 0, where
            assert pos["x"] + pos["w"] <= 24, where
        for var in board["templating"]["list"][1:]:
            assert var["datasource"]["uid"] == "${datasource}", name
        for item in board["annotations"]["list"]:
            if "expr" in item:
                assert item["datasource"]["uid"] == "${datasource}", name


def test_panels_do_not_overlap() -> None:
    for name, board in load_boards().items():
        cells: dict[tuple[int, int], str] = {}
        for panel in iter_panels(board):
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_provider_yaml_points_grafana_at_a_dashboards_folder() -> None:
    provider = yaml.safe_load((OUT / "provisioning" / "dashboards.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"] == generate.PROVISIONING_PATH


def test_configmaps_carry_each_board_with_the_sidecar_label() -> None:
    docs = list(yaml.safe_load_all((OUT / "configmap.yaml").read_text()))
    assert {d["metadata"]["name"] for d in docs} == {f"raftmon-dashboard-{n}" for n in BOARDS}
    for doc in docs:
        assert doc["kind"] == "ConfigMap"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = doc["data"].items()
        name = key.removeprefix("raftmon-").removesuffix(".json")
        assert text == (OUT / f"{name}.json").read_text(), key
        assert json.loads(text)["uid"] == f"raftmon-{name}"
