"""Progress flow control and the Inflights window."""

from __future__ import annotations

from node.raft.tracker import Inflights, Progress, ProgressState


def test_inflights_window_fills_and_frees_in_order() -> None:
    inf = Inflights(3)
    for i in (5, 8, 10):
        inf.add(i, 100)
    assert inf.full()
    inf.free_le(8)
    assert inf.count() == 1
    assert inf.bytes == 100
    inf.free_first_one()
    assert inf.count() == 0


def test_inflights_byte_limit() -> None:
    inf = Inflights(100, max_bytes=250)
    inf.add(1, 100)
    inf.add(2, 100)
    assert not inf.full()
    inf.add(3, 100)
    assert inf.full()


def test_probe_sends_one_append_then_pauses() -> None:
    pr = Progress(0, 5, Inflights(4))
    pr.sent_entries(2, 10)
    assert pr.is_paused()
    assert pr.maybe_update(6)
    assert not pr.is_paused()
    assert pr.next == 7


def test_replicate_pipelines_up_to_the_window() -> None:
    pr = Progress(4, 5, Inflights(2))
    pr.become_replicate()
    pr.sent_entries(3, 30)
    assert pr.next == 8
    assert not pr.is_paused()
    pr.sent_entries(2, 20)
    assert pr.is_paused()
    pr.maybe_update(7)
    pr.inflights.free_le(7)
    assert not pr.inflights.full()


def test_maybe_decr_to_uses_hint_and_ignores_stale_rejections() -> None:
    pr = Progress(2, 10, Inflights(4))
    assert not pr.maybe_decr_to(5, 3)  # not the index we probed: stale
    assert pr.maybe_decr_to(9, 4)
    assert pr.next == 5
    pr.become_replicate()
    assert not pr.maybe_decr_to(1, 0)  # below match: stale
    pr.next = 9
    assert pr.maybe_decr_to(8, 0)
    assert pr.next == pr.match + 1


def test_snapshot_state_pauses_until_reported() -> None:
    pr = Progress(3, 4, Inflights(4))
    pr.become_snapshot(20)
    assert pr.state == ProgressState.StateSnapshot
    assert pr.is_paused()
    pr.become_probe()
    assert pr.next == 21
    assert not pr.is_paused()
