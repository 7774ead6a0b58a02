"""The bench results file and the goals scorecard read from it (no clusters: `make test`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.bench import scorecard
from tests.bench.results import read_runs, record


def _scale(keys: int, soak: int, **ours: float) -> dict[str, Any]:
    figures = {
        "compact_defrag_leader_changes": 0.0,
        "compact_defrag_puts_failed": 0.0,
        "catchup_seconds": 1.0,
        "soak_puts_per_s": 1000.0,
        "soak_failed": 0.0,
        "soak_leader_changes": 0.0,
        "snap_dir_bytes": 4096.0,
    }
    return {
        "params": {"keys": keys, "soak_seconds": soak},
        "sides": {"raftmon": {**figures, **ours}, "etcd": dict(figures)},
    }


def _write(path: Path, bench: str, run: dict[str, Any]) -> None:
    record(bench, run["params"], run["sides"], path=path)


def _verdicts(path: Path) -> dict[str, scorecard.Verdict]:
    runs = list(read_runs(path))
    return {v.goal: v for v in scorecard.scorecard(runs)}


def _one(path: Path, starts: str) -> scorecard.Verdict:
    return next(v for goal, v in _verdicts(path).items() if goal.startswith(starts))


def test_a_recorded_run_is_read_back_with_its_commit_and_load(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    line = record("scale", {"keys": 10}, {"raftmon": {"x": 1.0}, "etcd": {"x": 2.0}}, path=path)
    (back,) = read_runs(path)
    assert back == line
    assert back["commit"]
    assert len(back["load_average"]) == 3


def test_a_torn_last_line_is_skipped_and_earlier_runs_kept(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    record("faulted", {}, {"raftmon": {}, "etcd": {}}, path=path)
    with path.open("a") as out:
        out.write('{"bench": "scale", "sid')
    assert [run["bench"] for run in read_runs(path)] == ["faulted"]


def test_nothing_recorded_means_every_goal_not_measured(tmp_path: Path) -> None:
    verdicts = _verdicts(tmp_path / "missing.jsonl")
    assert verdicts
    assert all(v.met is None for v in verdicts.values())
    assert {v.word for v in verdicts.values()} == {"not measured", "tests"}


def test_a_goal_at_every_size_needs_every_size(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "scale", _scale(10_000, 60))
    _write(path, "scale", _scale(100_000, 60))
    assert _one(path, "a lagging follower").met is None  # no 500k run yet
    _write(path, "scale", _scale(500_000, 60))
    assert _one(path, "a lagging follower").met is True


def test_one_size_over_the_limit_fails_the_goal_at_once(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "scale", _scale(10_000, 60, catchup_seconds=1.64))
    verdict = _one(path, "a lagging follower")
    assert verdict.met is False
    assert "10k 1.64x" in verdict.measured


def test_the_latest_run_of_a_size_replaces_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "scale", _scale(500_000, 60, compact_defrag_puts_failed=1.0))
    assert _one(path, "compaction + defrag").met is False
    _write(path, "scale", _scale(500_000, 60))
    assert _one(path, "compaction + defrag").met is True


@pytest.mark.parametrize(
    ("soak", "ours", "met"),
    [
        (60, {}, None),  # a one-minute soak does not answer a ten-minute goal
        (600, {}, True),
        (600, {"soak_puts_per_s": 990.0}, False),
        (600, {"soak_failed": 1.0}, False),
    ],
)
def test_the_soak_goal_wants_ten_minutes_at_100k(
    tmp_path: Path, soak: int, ours: dict[str, float], met: bool | None
) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "scale", _scale(100_000, soak, **ours))
    assert _one(path, "10-min soak").met is met


def test_a_db_copy_in_member_snap_fails_the_snapshot_goal(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "scale", _scale(100_000, 60, snap_dir_bytes=51e6))
    assert _one(path, "no full db copy").met is False


GROWTH = "ours:etcdExcessiveDatabaseGrowth"


def _telemetry(ours: dict[str, Any], theirs_alerts: list[str] | None) -> dict[str, Any]:
    base = {"rtt_p99": 0.002, "heartbeat_failures": 0.0, "alerts": theirs_alerts}
    return {"params": {"seconds": 600}, "sides": {"raftmon": {**base, **ours}, "etcd": base}}


@pytest.mark.parametrize(
    ("ours", "theirs_alerts", "met"),
    [
        ({"alerts": [GROWTH]}, [GROWTH], True),  # pending on both sides: not ours alone
        ({"alerts": ["ours:etcdMemberCommunicationSlow"]}, [], False),
        ({"alerts": [], "rtt_p99": 0.007}, [], False),
        ({"alerts": [], "heartbeat_failures": 1.0}, [], False),
        ({"alerts": None}, None, None),  # Prometheus absent: alerts not checked
    ],
)
def test_telemetry_goal(
    tmp_path: Path, ours: dict[str, Any], theirs_alerts: list[str] | None, met: bool | None
) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "telemetry", _telemetry(ours, theirs_alerts))
    assert _one(path, "10-min loaded run").met is met


def test_load_tool_goal_is_met_by_a_protocol_within_limit_in_every_case(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    figures = {"http put x1 cpu_us": 90.0, "http put x64 cpu_us": 40.0, "grpc put x1 cpu_us": 300.0}
    record("loadgen", {}, {"raftmon": figures, "etcd": figures}, path=path)
    assert _one(path, "`raftmon load`").met is True
    slow = {**figures, "http put x1 cpu_us": 122.0}
    record("loadgen", {}, {"raftmon": figures, "etcd": slow}, path=path)
    verdict = _one(path, "`raftmon load`")
    assert verdict.met is False
    assert "http worst 122 µs" in verdict.measured


def test_the_command_prints_a_row_per_goal_for_the_commit_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "faulted", {"params": {}, "sides": {
        "raftmon": {"failed_plus_indeterminate": 110}, "etcd": {"failed_plus_indeterminate": 100},
    }})  # fmt: skip
    commit = json.loads(path.read_text())["commit"]
    assert scorecard.main(["--results", str(path), "--commit", commit]) == 0
    out = capsys.readouterr().out
    assert f"at {commit}: 1 recorded runs" in out
    assert "| faulted run: failed + indeterminate ≤ 1.2x etcd's | 1.10x | met |" in out
    assert out.count("\n| ") == 1 + len(scorecard.GOALS)  # the header and a row per goal
    scorecard.main(["--results", str(path), "--commit", "0000000"])
    assert "0 recorded runs" in capsys.readouterr().out
