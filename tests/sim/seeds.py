"""The seed loop shared by the seeded simulations: which seeds run, and how a failure reads.

A failing seed fails the test with the violation (or the traceback of a crash inside the core
or the harness) and the exact command that replays that seed alone.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest

from tests.sim.cluster import InvariantViolation


def seeds(config: pytest.Config, default: int, offset: int = 0) -> list[int]:
    """`--seed N` alone, else `--seeds N` (or `default`) seeds starting at `offset`.

    A long run passes a large `offset` so that its seeds are disjoint from the default run's.
    """
    one = config.getoption("seed")
    if one is not None:
        return [one]
    n = config.getoption("seeds")
    return [s + offset for s in range(n if n is not None else default)]


def run_seeds(
    request: pytest.FixtureRequest, run: Callable[[int], object], default: int, offset: int = 0
) -> None:
    """The seeds `seeds` picks for this test, each run by `run`; the replay line names the test."""
    run_seed_list(run, seeds(request.config, default, offset), request.node.nodeid)


def run_seed_list(run: Callable[[int], object], seed_list: list[int], node_id: str) -> None:
    """Run `run(seed)` for every seed; fail on the first one that violates or crashes."""
    for seed in seed_list:
        failure = None
        try:
            run(seed)
        except InvariantViolation as e:
            failure = str(e)
        except Exception:  # a crash inside the core or the harness is a failure of this seed too
            failure = traceback.format_exc()
        if failure is not None:
            pytest.fail(
                f"seed {seed}: {failure}\n"
                f"replay: .venv/bin/python -m pytest {node_id} --seed {seed}",
                pytrace=False,
            )
