"""A full disk: WALWriteError, no further writes, and a reopen that truncates the partial batch."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

import node.wal.segment
from node.wal import WAL, WALWriteError
from tests.wal.walutil import META, SMALL_SEGMENT, entries, entry, hs


def test_enospc_mid_write_raises_and_reopen_truncates_the_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wal_dir = str(tmp_path / "wal")
    wal = WAL.create(wal_dir, META, segment_size=SMALL_SEGMENT)
    wal.save(hs(3), entries(1, 3), must_sync=True)
    target = os.stat(wal.active_segment).st_ino
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes) -> int:
        if os.fstat(fd).st_ino != target:
            return real_write(fd, data)
        real_write(fd, bytes(data[: len(data) // 2]))  # the disk took part of it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(WALWriteError, match="No space left"):
        wal.save(hs(6), entries(4, 6), must_sync=True)
    monkeypatch.setattr(os, "write", real_write)
    with pytest.raises(WALWriteError, match="unusable"):  # fail-stop: no write after a failure
        wal.save(hs(7), [entry(7)], must_sync=True)
    wal.close()

    with caplog.at_level(logging.WARNING, logger="node.wal"):
        wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    assert any("torn" in r.getMessage() for r in caplog.records)
    with wal:
        assert rec.entries[:3] == entries(1, 3)
        assert rec.entries == entries(1, len(rec.entries))  # whole records only
        wal.save(hs(9), entries(len(rec.entries) + 1, 9), must_sync=True)
    wal, rec = WAL.open(wal_dir, segment_size=SMALL_SEGMENT)
    wal.close()
    assert rec.entries == entries(1, 9)


def test_enospc_when_cutting_a_segment_keeps_the_log_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal_dir = str(tmp_path / "wal")
    wal = WAL.create(wal_dir, META, segment_size=4096)
    index = 0
    while wal.tail_offset < 3000:
        index += 1
        wal.save(None, [entry(index)], must_sync=True)

    def no_space(fd: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(node.wal.segment, "preallocate", no_space)
    with pytest.raises(WALWriteError):
        wal.save(None, entries(index + 1, index + 20), must_sync=True)
    wal.close()
    assert not [n for n in os.listdir(wal_dir) if n.endswith(".tmp")]
    wal, rec = WAL.open(wal_dir, segment_size=4096)
    wal.close()
    assert rec.entries == entries(1, index)


def test_failed_fdatasync_is_fatal_for_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = WAL.create(str(tmp_path / "wal"), META, segment_size=SMALL_SEGMENT)

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", eio)
    with pytest.raises(WALWriteError, match="Input/output"):
        wal.save(hs(1), [entry(1)], must_sync=True)
    monkeypatch.undo()
    with pytest.raises(WALWriteError):
        wal.save(hs(2), [entry(2)], must_sync=True)
    wal.close()
