"""Seeded random-fault simulation: safety after every Ready, liveness after healing.

`--seeds N` sets how many seeds run (default below); `--seed N` replays one seed exactly.
"""

from __future__ import annotations

import traceback

import pytest

from tests.sim.cluster import InvariantViolation, run_random_faults

NODE_ID = "tests/sim/test_random_faults.py"
DEFAULT_SEEDS = 2000  # ~35 s on one core (~17 ms a seed); `make test-long` runs far more
LONG_SEEDS = 20000


def _seeds(config: pytest.Config, default: int) -> list[int]:
    one = config.getoption("seed")
    if one is not None:
        return [one]
    n = config.getoption("seeds")
    return list(range(n if n is not None else default))


def _run(seeds: list[int], test_name: str) -> None:
    for seed in seeds:
        failure = None
        try:
            run_random_faults(seed)
        except InvariantViolation as e:
            failure = str(e)
        except Exception:  # a crash inside the core or the harness is a failure of this seed too
            failure = traceback.format_exc()
        if failure is not None:
            pytest.fail(
                f"seed {seed}: {failure}\n"
                f"replay: .venv/bin/python -m pytest {NODE_ID}::{test_name} --seed {seed}",
                pytrace=False,
            )


def test_random_faults(request: pytest.FixtureRequest) -> None:
    """Thousands of small clusters (1-7 members) under drops, delays, partitions and crashes."""
    _run(_seeds(request.config, DEFAULT_SEEDS), "test_random_faults")


@pytest.mark.slow
def test_random_faults_long(request: pytest.FixtureRequest) -> None:
    """The same simulation over many more seeds (make test-long)."""
    seeds = _seeds(request.config, LONG_SEEDS)
    if request.config.getoption("seed") is None and request.config.getoption("seeds") is None:
        seeds = [s + 1_000_000 for s in seeds]  # disjoint from the default run's seeds
    _run(seeds, "test_random_faults_long")
