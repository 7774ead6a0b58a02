"""Seeded random-fault simulation: safety after every Ready, liveness after healing.

`--seeds N` sets how many seeds run (default below); `--seed N` replays one seed exactly.
"""

from __future__ import annotations

import pytest

from tests.sim.cluster import run_random_faults
from tests.sim.seeds import run_seeds, seeds

NODE_ID = "tests/sim/test_random_faults.py"
DEFAULT_SEEDS = 2000  # ~35 s on one core (~17 ms a seed); `make test-long` runs far more
LONG_SEEDS = 20000


def test_random_faults(request: pytest.FixtureRequest) -> None:
    """Thousands of small clusters (1-7 members) under drops, delays, partitions and crashes."""
    run_seeds(
        run_random_faults,
        seeds(request.config, DEFAULT_SEEDS),
        f"{NODE_ID}::test_random_faults",
    )


@pytest.mark.slow
def test_random_faults_long(request: pytest.FixtureRequest) -> None:
    """The same simulation over many more seeds (make test-long), disjoint from the default's."""
    run_seeds(
        run_random_faults,
        seeds(request.config, LONG_SEEDS, 1_000_000),
        f"{NODE_ID}::test_random_faults_long",
    )
