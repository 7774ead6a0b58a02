"""Crash-test helper, run as a real subprocess: append forever, print each acknowledged index.

Usage: python -m tests.wal.crash_writer WAL_DIR SEGMENT_SIZE SEED

Opens (or creates) the WAL, then loops: saves a batch of 1-5 entries plus a hard
state with must_sync=True and, only after save() returned, prints the batch's
last index and flushes stdout. The parent kills it with SIGKILL at random
points; every printed index must survive. Entry data is a pure function of
(index, term), so the parent can check contents without being told them.
Each run writes at a new term, so a restart that lost acknowledged entries
cannot hide it by rewriting them with identical bytes.
"""

from __future__ import annotations

import random
import sys

from node.raft.messages import HardState
from node.wal import WAL
from tests.wal.walutil import META, entry


def main(argv: list[str]) -> int:
    wal_dir, segment_size, seed = argv[0], int(argv[1]), int(argv[2])
    rng = random.Random(seed)
    if WAL.exists(wal_dir):
        wal, rec = WAL.open(wal_dir, segment_size=segment_size)
        last = rec.entries[-1].index if rec.entries else 0
        term = (rec.hard_state.term if rec.hard_state else 0) + 1
    else:
        wal = WAL.create(wal_dir, META, segment_size=segment_size)
        last, term = 0, 1
    print(f"ready {last} {term}", flush=True)
    while True:
        batch = [entry(i, term) for i in range(last + 1, last + 1 + rng.randint(1, 5))]
        last = batch[-1].index
        wal.save(HardState(term=term, vote=1, commit=last), batch, must_sync=True)
        sys.stdout.write(f"{last} {term}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
