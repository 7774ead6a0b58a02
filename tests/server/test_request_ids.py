"""Request ids never repeat across members or across a member's restarts (etcd's idutil)."""

from __future__ import annotations

from node.server.proposals import RequestIDs


def test_ids_count_up_from_the_start_time_under_the_member_prefix() -> None:
    ids = RequestIDs(member_id=0xABCD_0000_1234, now_ms=1_000)
    first, second = ids.next(), ids.next()
    assert first >> 48 == 0x1234
    assert first & ((1 << 48) - 1) == (1_000 << 8) + 1
    assert second == first + 1


def test_a_restarted_member_starts_above_every_id_of_its_earlier_life() -> None:
    before = RequestIDs(member_id=7, now_ms=5_000)
    issued = [before.next() for _ in range(10 * 256)]  # 256 per ms for 10 ms, flat out
    after = RequestIDs(member_id=7, now_ms=5_000 + 11)
    assert after.next() > max(issued)


def test_members_never_share_an_id() -> None:
    one, two = RequestIDs(member_id=1, now_ms=9), RequestIDs(member_id=2, now_ms=9)
    assert {one.next() for _ in range(1000)}.isdisjoint({two.next() for _ in range(1000)})


def test_the_suffix_wraps_inside_its_48_bits() -> None:
    ids = RequestIDs(member_id=3, now_ms=(1 << 40) - 1)
    values = [ids.next() for _ in range(300)]
    assert all(v >> 48 == 3 for v in values)
