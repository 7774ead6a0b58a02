"""A failing seed always names itself and its replay command, whatever the failure is.

Both seeded simulations (test_random_faults, test_figure8_schedules) run through `run_seed_list`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sim.cluster import InvariantViolation
from tests.sim.seeds import run_seed_list


def crash_on_seed_7(seed: int) -> None:
    if seed == 7:
        raise AssertionError("to_commit(13) is out of range")  # a crash, not a violation


def violate_on_seed_7(seed: int) -> None:
    if seed == 7:
        raise InvariantViolation("two leaders in term 3")


@pytest.mark.parametrize("failing", [crash_on_seed_7, violate_on_seed_7])
def test_a_failing_seed_prints_its_seed_and_replay_command(
    failing: Callable[[int], None],
) -> None:
    node_id = "tests/sim/test_random_faults.py::test_x"
    with pytest.raises(pytest.fail.Exception) as failed:
        run_seed_list(failing, list(range(10)), node_id)
    text = str(failed.value)
    assert text.startswith("seed 7: ")
    assert f"-m pytest {node_id} --seed 7" in text
    assert ("out of range" in text) or ("two leaders" in text)
