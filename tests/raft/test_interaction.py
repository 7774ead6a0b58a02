"""Runs every transcript in tests/raft/testdata through the interaction environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.datadriven import run_test
from tests.raft.interaction_env import InteractionEnv

TESTDATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_interaction(path: Path, request: pytest.FixtureRequest) -> None:
    env = InteractionEnv()
    run_test(path, env.handle, rewrite=bool(request.config.getoption("rewrite")))
