"""Seeded random-fault simulation: safety after every Ready, liveness after healing.

`--seeds N` sets how many seeds run (default below); `--seed N` replays one seed exactly.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.sim.cluster import run_random_faults
from tests.sim.seeds import run_seeds

# ~30 s on one core (~17 ms a seed); fewer than the 2000 before membership changes made a seed
# dearer, so `make test` takes about as long as it did. `make test-long` runs far more.
DEFAULT_SEEDS = 1800
LONG_SEEDS = 20000


def test_random_faults(request: pytest.FixtureRequest) -> None:
    """Thousands of small clusters (1-7 members) under drops, delays, partitions and crashes."""
    run_seeds(request, run_random_faults, DEFAULT_SEEDS)


def test_random_faults_exercise_membership_changes() -> None:
    """The simulation really changes membership under faults: every kind of change is
    applied, learners are promoted, added members catch up by snapshot, removed leaders hand
    over (a guard against the generator silently degrading)."""
    stats: Counter[str] = Counter()
    for seed in range(100):
        stats += run_random_faults(seed).stats
    for what in (
        "applied ConfChangeAddNode",
        "applied ConfChangeAddLearnerNode",
        "applied ConfChangeRemoveNode",
        "applied ConfChangeUpdateNode",
        "learner promoted",
        "leader removed itself",
        "removed leader handed over",
        "snapshot sent to an added member",
    ):
        assert stats[what] > 0, (what, dict(stats))


@pytest.mark.slow
def test_random_faults_long(request: pytest.FixtureRequest) -> None:
    """The same simulation over many more seeds (make test-long), disjoint from the default's."""
    run_seeds(request, run_random_faults, LONG_SEEDS, 1_000_000)
