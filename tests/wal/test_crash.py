"""kill -9 a real writer process at random points: every acknowledged index survives."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.children import spawn
from node.wal import WAL
from tests.wal.walutil import entry

ROOT = Path(__file__).resolve().parents[2]
SEED = 7321
ROUNDS = 20
SEGMENT = 32 * 1024  # small, so kills land around segment cuts too
LINE_TIMEOUT = 30.0


def _read_line(proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, deadline: float) -> str:
    """One stdout line of the writer, bounded by `deadline`."""
    assert proc.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("crash writer went silent")
        if sel.select(timeout=remaining):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"crash writer exited rc={proc.poll()}")
            return line.decode().strip()


def test_every_acknowledged_entry_survives_kill_9(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal_dir = str(tmp_path / "wal")
    acked: dict[int, int] = {}  # index -> term of the last acknowledged write at it
    for round_no in range(ROUNDS):
        proc = spawn(
            [sys.executable, "-m", "tests.wal.crash_writer", wal_dir, str(SEGMENT), str(round_no)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            sel = selectors.DefaultSelector()
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + LINE_TIMEOUT
            _ready, start_last, _term = _read_line(proc, sel, deadline).split()
            assert int(start_last) >= max(acked, default=0), f"round {round_no}: acked data lost"
            last = int(start_last)
            for _ in range(rng.randint(1, 120)):
                index_s, term_s = _read_line(proc, sel, deadline).split()
                for i in range(last + 1, int(index_s) + 1):
                    acked[i] = int(term_s)
                last = int(index_s)
            os.kill(proc.pid, signal.SIGKILL)  # mid-loop: often inside save()
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]

        wal, rec = WAL.open(wal_dir, segment_size=SEGMENT)
        wal.close()
        got = {e.index: e for e in rec.entries}
        for index, term in acked.items():
            assert index in got, f"round {round_no}: acknowledged index {index} lost"
            assert got[index] == entry(index, term), f"round {round_no}: index {index} differs"
        assert rec.hard_state is not None
        assert rec.hard_state.commit >= max(acked)
        # entries the writer saved but never acknowledged may survive; they are whole
        for e in rec.entries:
            assert e == entry(e.index, e.term)
