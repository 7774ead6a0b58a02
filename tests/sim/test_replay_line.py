"""A failing seed always names itself and its replay command, whatever the failure is."""

from __future__ import annotations

import pytest

from tests.sim import test_figure8_schedules, test_random_faults
from tests.sim.cluster import InvariantViolation


def crash_on_seed_7(seed: int) -> None:
    if seed == 7:
        raise AssertionError("to_commit(13) is out of range")  # a crash, not a violation


def violate_on_seed_7(seed: int) -> None:
    if seed == 7:
        raise InvariantViolation("two leaders in term 3")


@pytest.mark.parametrize("module", [test_random_faults, test_figure8_schedules])
@pytest.mark.parametrize("failing", [crash_on_seed_7, violate_on_seed_7])
def test_a_failing_seed_prints_its_seed_and_replay_command(
    monkeypatch: pytest.MonkeyPatch, module, failing
) -> None:
    runner = "run_random_faults" if module is test_random_faults else "run_figure8_schedule"
    monkeypatch.setattr(module, runner, failing)
    with pytest.raises(pytest.fail.Exception) as failed:
        module._run(list(range(10)), "test_x")
    text = str(failed.value)
    assert text.startswith("seed 7: ")
    assert f"-m pytest {module.NODE_ID}::test_x --seed 7" in text
    assert ("out of range" in text) or ("two leaders" in text)
