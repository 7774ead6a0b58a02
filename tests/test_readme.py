"""README.md stays true: every metric family listed, every CLI subcommand shown."""

from __future__ import annotations

from pathlib import Path

from exporter.catalog import CATALOG
from node.cli import SUBCOMMANDS

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_lists_every_metric_family() -> None:
    missing = [spec.name for spec in CATALOG if f"`{spec.name}`" not in README]
    assert missing == [], "regenerate the table with `python -m exporter`"


def test_readme_shows_the_two_commands_and_every_subcommand() -> None:
    assert "make demo" in README
    assert "make test" in README
    missing = [name for name in SUBCOMMANDS if f"raftmon {name}" not in README]
    assert missing == []
