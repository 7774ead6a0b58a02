"""Shared bits of the WAL tests: deterministic entries and a recording observer."""

from __future__ import annotations

import zlib

from node.raft.messages import Entry, HardState
from node.wal.observer import NullObserver

META = b"member=1/cluster=7"
SMALL_SEGMENT = 16 * 1024  # small segments so tests cut and release often


def payload(index: int, term: int = 1) -> bytes:
    """Deterministic data of varying length for entry `index`, so checks need no memory."""
    size = 1 + zlib.crc32(index.to_bytes(8, "little")) % 300
    return (f"{term}:{index}:".encode() * (size // 4 + 1))[:size]


def entry(index: int, term: int = 1) -> Entry:
    return Entry(term=term, index=index, data=payload(index, term))


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    """Entries lo..hi inclusive."""
    return [entry(i, term) for i in range(lo, hi + 1)]


def hs(commit: int, term: int = 1, vote: int = 1) -> HardState:
    return HardState(term=term, vote=vote, commit=commit)


class Recorder(NullObserver):
    """A WalObserver that remembers every observation."""

    def __init__(self) -> None:
        self.fsyncs: list[float] = []
        self.writes: list[tuple[int, float]] = []
        self.snapshot_saves: list[float] = []
        self.snapshot_fsyncs: list[float] = []
        self.snapshot_db_fsyncs: list[float] = []

    def on_fsync(self, seconds: float) -> None:
        self.fsyncs.append(seconds)

    def on_write(self, nbytes: int, seconds: float) -> None:
        self.writes.append((nbytes, seconds))

    def on_snapshot_save(self, seconds: float) -> None:
        self.snapshot_saves.append(seconds)

    def on_snapshot_fsync(self, seconds: float) -> None:
        self.snapshot_fsyncs.append(seconds)

    def on_snapshot_db_fsync(self, seconds: float) -> None:
        self.snapshot_db_fsyncs.append(seconds)
