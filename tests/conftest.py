"""Shared pytest options and fixtures.

`--seed N` replays one simulation seed exactly; `--seeds N` sets how many seeds the
random simulations run; `--rewrite` regenerates datadriven transcripts.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--seed", type=int, default=None, help="replay one simulation seed")
    parser.addoption("--seeds", type=int, default=None, help="number of simulation seeds")
    parser.addoption("--rewrite", action="store_true", help="rewrite datadriven expectations")
