"""Replay maps segments and leaves each entry's data in the mapping until it is read.

What must hold for the rest of the member: a replayed entry equals the entry written (both
ways, and in lists), its data is the written bytes whenever it is read (also after the
WAL is closed and the segment deleted, as after a snapshot releases it), and setting it
works as on any Entry. The last hard state is found among the entries' records.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path
from typing import Any

import pytest

from node.raft.messages import Entry, EntryType
from node.wal import WAL
from node.wal.record import LazyEntry, decode_entry_lazily
from tests.wal.walutil import META, SMALL_SEGMENT, entries, hs


def _written(tmp_path: Path) -> tuple[str, list[Entry]]:
    wal_dir = str(tmp_path / "wal")
    written = entries(1, 40)
    with WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT) as wal:
        for i in range(0, 40, 8):
            wal.save(hs(i + 8, vote=2), written[i : i + 8], must_sync=True)
    return wal_dir, written


def test_replayed_entries_equal_the_written_ones_both_ways(tmp_path: Path) -> None:
    wal_dir, written = _written(tmp_path)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    with wal:
        assert all(isinstance(e, LazyEntry) for e in rec.entries)
        assert rec.entries == written
        assert written == rec.entries
        assert rec.hard_state == hs(40, vote=2)
        assert rec.entries[3] != Entry(term=1, index=4, data=b"other")


def test_data_outlives_the_wal_and_its_segment_files(tmp_path: Path) -> None:
    wal_dir, written = _written(tmp_path)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    wal.close()
    for name in os.listdir(wal_dir):
        os.unlink(os.path.join(wal_dir, name))
    assert [e.data for e in rec.entries] == [e.data for e in written]
    assert all(isinstance(e.data, bytes) for e in rec.entries)


def test_data_can_be_set_and_the_type_is_kept(tmp_path: Path) -> None:
    payload = memoryview(
        (3).to_bytes(8, "little") + (9).to_bytes(8, "little") + bytes([1]) + b"conf"
    )
    lazy = decode_entry_lazily(payload)
    assert (lazy.term, lazy.index, lazy.type) == (3, 9, EntryType.EntryConfChange)
    assert lazy == Entry(term=3, index=9, type=EntryType.EntryConfChange, data=b"conf")
    lazy.data = b"changed"
    assert lazy.data == b"changed"
    assert lazy == Entry(term=3, index=9, type=EntryType.EntryConfChange, data=b"changed")


def test_a_filesystem_that_cannot_map_files_is_read_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal_dir, written = _written(tmp_path)
    real_mmap = mmap.mmap

    def no_file_mappings(fd: int, *args: Any, **kwargs: Any) -> mmap.mmap:
        if fd != -1:
            raise OSError(errno.ENODEV, "no mmap here")
        return real_mmap(fd, *args, **kwargs)  # the fallback's anonymous mapping

    monkeypatch.setattr(mmap, "mmap", no_file_mappings)  # recovery looks it up per call
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    with wal:
        assert rec.entries == written
        assert rec.hard_state == hs(40, vote=2)


def test_a_scan_leaves_the_zero_tail_out_of_the_page_cache(tmp_path: Path) -> None:
    # Cached pages of the preallocated tail count as data for SEEK_HOLE: read once (as
    # readahead does), they made each start compare them for zeros again.
    wal_dir = str(tmp_path / "wal")
    with WAL.create(wal_dir, META, segment_size=4 << 20) as wal:
        wal.save(hs(8), entries(1, 8), must_sync=True)
        path = wal.active_segment
    with open(path, "rb") as fh:
        fd = fh.fileno()
        fresh = os.lseek(fd, 0, os.SEEK_HOLE)  # where the data ends as written
        fh.read()  # every page cached, the zeros too
        WAL.open(wal_dir, segment_size=4 << 20)[0].close()
        # A mapping may keep the pages around its last fault (fault-around: 16 pages).
        assert os.lseek(fd, 0, os.SEEK_HOLE) <= fresh + 16 * mmap.PAGESIZE
