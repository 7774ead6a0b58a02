"""README.md and docs/ stay true: every metric family listed, every CLI subcommand shown."""

from __future__ import annotations

from pathlib import Path

from exporter.__main__ import document
from exporter.catalog import CATALOG
from lab.cli import SUBCOMMANDS
from node.config import flags_markdown

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_docs_metrics_lists_every_metric_family_and_is_fresh() -> None:
    page = (ROOT / "docs" / "metrics.md").read_text()
    assert page == document(), "regenerate: python -m exporter > docs/metrics.md"
    assert [spec.name for spec in CATALOG if f"`{spec.name}`" not in page] == []
    assert "docs/metrics.md" in README


def test_every_docs_page_is_linked_from_the_readme() -> None:
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert [p for p in pages if f"docs/{p}" not in README] == []


def test_readme_shows_the_two_commands_and_every_subcommand() -> None:
    assert "make demo" in README
    assert "make test" in README
    missing = [name for name in SUBCOMMANDS if f"raftmon {name}" not in README]
    assert missing == []


def test_docs_flags_lists_every_member_flag_and_is_fresh() -> None:
    page = (ROOT / "docs" / "flags.md").read_text()
    assert page == flags_markdown(), "regenerate: python -m node.config > docs/flags.md"
