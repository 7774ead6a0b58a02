"""WAL group-commit benchmark (`make bench`): records/s and fsyncs/s at 1, 16, 256 proposers.

Models the driver: N asyncio proposer tasks each submit one entry (256-byte
payload) and await its future; one syncer loop takes everything pending, calls
`await asyncio.to_thread(wal.save, ...)` once (one write, one fdatasync),
resolves the futures and repeats. The WAL lives in a temp dir under the
project's `var/` (a real disk; /tmp may be tmpfs, where fsync costs nothing).
Numbers are noisy on a shared 2-core machine; the point is the ratio between
levels: with more proposers each fsync carries more records.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.raft.messages import Entry, HardState
from node.wal import WAL
from node.wal.observer import NullObserver

ROOT = Path(__file__).resolve().parents[2]
LEVELS = (1, 16, 256)
SECONDS = 3.0
PAYLOAD = bytes(range(256))


class _Fsyncs(NullObserver):
    """Observer keeping every fsync duration."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_fsync(self, seconds: float) -> None:
        self.seconds.append(seconds)


@dataclass
class Result:
    proposers: int
    records: int
    fsyncs: int
    elapsed: float
    fsync_seconds: list[float]

    def row(self) -> str:
        q = statistics.quantiles(self.fsync_seconds, n=100, method="inclusive")
        return (
            f"{self.proposers:>9} {self.records / self.elapsed:>10.0f} "
            f"{self.fsyncs / self.elapsed:>9.0f} {self.records / max(self.fsyncs, 1):>11.1f} "
            f"{q[49] * 1000:>9.3f} {q[98] * 1000:>9.3f}"
        )


async def _run_level(wal: WAL, proposers: int, seconds: float) -> tuple[int, float]:
    pending: list[tuple[bytes, asyncio.Future[int]]] = []
    wake = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    next_index = wal.last_index + 1
    acknowledged = 0

    async def proposer() -> None:
        nonlocal acknowledged
        while not stop.is_set():
            fut: asyncio.Future[int] = loop.create_future()
            pending.append((PAYLOAD, fut))
            wake.set()
            await fut
            acknowledged += 1

    async def syncer() -> None:
        nonlocal next_index
        while not (stop.is_set() and not pending):
            if not pending:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), timeout=0.5)
                except TimeoutError:
                    continue
            batch = pending[:]
            pending.clear()
            entries = [
                Entry(term=1, index=next_index + k, data=data) for k, (data, _) in enumerate(batch)
            ]
            next_index += len(batch)
            hard_state = HardState(term=1, vote=1, commit=next_index - 1)
            await asyncio.to_thread(wal.save, hard_state, entries, True)
            for k, (_, fut) in enumerate(batch):
                fut.set_result(entries[k].index)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(syncer())
        for _ in range(proposers):
            tg.create_task(proposer())
        await asyncio.sleep(seconds)
        stop.set()
        wake.set()
    return acknowledged, time.perf_counter() - started


def _filesystem(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        return out.splitlines()[-1].split()[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


@pytest.mark.bench
def test_wal_group_commit_benchmark() -> None:
    base = ROOT / "var"
    base.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="walbench-", dir=base))
    results: list[Result] = []
    try:
        for proposers in LEVELS:
            obs = _Fsyncs()
            wal = WAL.create(str(workdir / f"wal-{proposers}"), b"bench", observer=obs)
            try:
                records, elapsed = asyncio.run(_run_level(wal, proposers, SECONDS))
                results.append(Result(proposers, records, wal.fsyncs, elapsed, obs.seconds))
                assert wal.records_written >= records  # every acknowledged entry was written
            finally:
                wal.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nWAL group commit, {SECONDS:.0f} s per level, 256-byte entries, "
        f"dir under {base} (filesystem {_filesystem(base)}), cpus={os.cpu_count()}"
    )
    print("proposers  records/s  fsyncs/s  rec/fsync  p50 (ms)  p99 (ms)")
    for result in results:
        print(result.row())
    by_level = {r.proposers: r for r in results}
    # behaviour, not timing: with many waiting proposers each fsync carries many records
    assert by_level[256].records / by_level[256].fsyncs > 1
    assert by_level[1].records / by_level[1].fsyncs == pytest.approx(1, abs=0.01)
