"""Recovery reads a segment only up to its zero tail (found from the end, chunk by chunk).

The rules must not change with it: test_recovery.py's tests on small segments run here
again with chunks of a few bytes, so records, torn tails and zero gaps fall on chunk
boundaries; and records whose own bytes end in zeros reach into the unread tail.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from node.raft.messages import Entry
from node.wal import WAL, WALCorruptError, recovery
from tests.wal.test_recovery import (  # noqa: F401 - collected again under small chunks
    test_damage_in_an_older_segment_is_corruption_even_at_its_end,
    test_flipped_byte_in_an_entry_the_snapshot_covers_is_still_corruption,
    test_flipped_header_byte_in_an_early_record_is_corruption,
    test_flipped_payload_byte_in_an_early_record_is_corruption,
    test_torn_multi_record_batch_keeps_its_complete_prefix,
    test_torn_tail_at_random_offsets_recovers_everything_before_it,
    test_zeroed_record_followed_by_data_is_corruption,
)
from tests.wal.walutil import META, SMALL_SEGMENT, entries, hs


@pytest.fixture(autouse=True, params=[7, 64, 4096])
def small_chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(recovery, "ZERO_TAIL_CHUNK", request.param)
    return int(request.param)


def test_only_the_written_part_of_a_preallocated_segment_is_read(tmp_path: Path) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        wal.save(hs(3), entries(1, 3), must_sync=True)
        tail, path = wal.tail_offset, wal.active_segment
    data, size = recovery.read_to_zero_tail(path)
    assert size == os.path.getsize(path) == SMALL_SEGMENT
    assert len(data) < tail + recovery.ZERO_TAIL_CHUNK  # the zeros after the tail: unread
    with open(path, "rb") as fh:
        whole = fh.read()
    assert whole[: len(data)] == data
    assert whole[len(data) :] == bytes(size - len(data))


def test_entries_ending_in_zero_bytes_reach_into_the_unread_tail(tmp_path: Path) -> None:
    # Each entry's data ends in more zeros than a chunk holds: the last one's record ends
    # past the last non-zero chunk and must be read as the zeros the file holds.
    wal_dir = str(tmp_path / "wal")
    zeroed = [Entry(term=1, index=i, data=b"v%d" % i + bytes(5000)) for i in range(1, 4)]
    with WAL.create(wal_dir, META, segment_size=64 * 1024) as wal:
        wal.save(hs(3), zeroed[:2], must_sync=True)
        wal.save(None, zeroed[2:], must_sync=True)  # the last record: an entry
    wal, rec = WAL.open(wal_dir, segment_size=64 * 1024)
    with wal:
        assert rec.entries == zeroed
        assert rec.hard_state == hs(3)
        wal.save(None, [Entry(term=1, index=4, data=b"after")], must_sync=True)
    wal, rec = WAL.open(wal_dir, segment_size=64 * 1024)
    wal.close()
    assert rec.entries == [*zeroed, Entry(term=1, index=4, data=b"after")]


def test_data_far_after_a_zero_gap_is_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        wal.save(hs(3), entries(1, 3), must_sync=True)
        tail, path = wal.tail_offset, wal.active_segment
    with open(path, "r+b") as fh:  # one stray byte near the end of the preallocated file
        fh.seek(SMALL_SEGMENT - 3)
        fh.write(b"\x01")
    with caplog.at_level(logging.ERROR, logger="node.wal"), pytest.raises(WALCorruptError) as info:
        WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    assert info.value.path == path
    assert info.value.offset == SMALL_SEGMENT - 3
    assert f"zero gap that starts at {tail}" in str(info.value)
