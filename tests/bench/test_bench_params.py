"""The benches' size parameters, read as `make bench-goals` writes them (no clusters)."""

from __future__ import annotations

import pytest

from tests.bench.test_scale_bench import soak_seconds


@pytest.mark.parametrize(
    ("spec", "keys", "seconds"),
    [
        ("60", 100_000, 60),
        ("600", 10_000, 600),
        ("60,100000:600", 100_000, 600),
        ("60,100000:600", 500_000, 60),
        ("100000:600", 10_000, 60),  # no default given: a minute
        ("", 10_000, 60),
    ],
)
def test_soak_seconds_per_size(spec: str, keys: int, seconds: int) -> None:
    assert soak_seconds(spec, keys) == seconds
