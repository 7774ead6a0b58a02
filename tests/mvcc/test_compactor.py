"""etcd 3.4's auto-compaction policies, fed with an injected clock."""

from __future__ import annotations

import pytest

from node.mvcc.compactor import (
    Never,
    PeriodicCompactor,
    RevisionCompactor,
    make_compactor,
    parse_retention,
)


def test_revision_mode_compacts_to_current_minus_retention_every_five_minutes() -> None:
    c = RevisionCompactor(1000)
    assert c.next_compaction(0.0, 5000) is None  # start
    assert c.next_compaction(299.0, 5000) is None
    assert c.next_compaction(300.0, 5000) == 4000
    assert c.next_compaction(400.0, 9000) is None  # within the interval
    assert c.next_compaction(600.0, 5000) is None  # same revision as last time
    assert c.next_compaction(900.0, 5500) == 4500
    assert c.next_compaction(1200.0, 900) is None  # would be <= 0


def test_periodic_mode_keeps_the_retention_window() -> None:
    c = PeriodicCompactor(600.0)  # "10m": sample every 60 s, compact every 10 min

    def rev_at(t: float) -> int:
        return 100 + int(t)  # one revision per second

    answers = {}
    t = 0.0
    while t <= 1800.0:  # bounded simulated half hour, fed every 5 s
        got = c.next_compaction(t, rev_at(t))
        if got is not None:
            answers[t] = got
        t += 5.0
    # first compaction one period after start, then every 10 minutes,
    # each to the revision seen ~one period earlier
    assert sorted(answers) == [600.0, 1200.0, 1800.0]
    for when, rev in answers.items():
        assert rev == rev_at(when - 600.0)


def test_periodic_mode_caps_the_interval_at_one_hour() -> None:
    c = PeriodicCompactor(72 * 3600.0)
    assert c.interval == 3600.0
    assert c.sample_every == 360.0
    assert c.retentions == 720


def test_retention_parsing_and_factory() -> None:
    assert parse_retention("periodic", "1") == 3600.0  # bare integer = hours
    assert parse_retention("periodic", "30m") == 1800.0
    assert parse_retention("revision", "1000") == 1000.0
    with pytest.raises(ValueError, match="integer"):
        parse_retention("revision", "1h")
    assert isinstance(make_compactor("periodic", "0"), Never)
    assert isinstance(make_compactor("revision", "10"), RevisionCompactor)
    assert isinstance(make_compactor("periodic", "5m"), PeriodicCompactor)
