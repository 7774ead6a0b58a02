"""Apply-only microbench: µs per put as the SQLite file grows (issue 17, MVCC schema).

Why: a 1 KiB soak's CPU per put rose with the database size; this isolates the store
(KVStore.apply_batch, batches of 16 puts of 1 KiB values over 10k keys, no compaction)
from Raft, the network and the load tool. Each window reports wall time, the applying
thread's CPU and the CPU of every other thread of the process (the SQLite checkpoint
thread, node/mvcc/checkpointer.py), per put, beside the file size (db + its WAL).

Run it against any checkout's code (PYTHONPATH picks the `node` package):

    PYTHONPATH=/work/main .venv/bin/python tests/bench/apply_growth.py --mb 50 800

`--variant` (schema 2 code only) changes the DDL before the store opens, to price a layout
without writing it: `without-rowid` (kv as a WITHOUT ROWID table on its id), `no-live`
(the `live` table's writes go nowhere: a view whose INSTEAD OF trigger drops them; puts
do not read it, so this bounds what keeping the current versions only in memory, as
etcd's treeIndex, could save). Commit cdb14b8 also had `no-kv-key`, for the (key) index
schema 2 had before its rows linked to their previous versions.

Numbers are printed, never asserted (a shared box); hold /work/bench.lock when comparing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import node
from node.mvcc import codec, schema
from node.mvcc import requests as rq
from node.mvcc.store import KVStore

BATCH = 16
KEYS = 10_000
VALUE = b"v" * 1024
WINDOW = 10_000  # puts per measured window


def _size_mb(path: str) -> float:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(path + suffix)
        except FileNotFoundError:
            pass
    return total / 1e6


_LIVE_TABLE = "CREATE TABLE IF NOT EXISTS live ("
_NO_LIVE = """CREATE VIEW IF NOT EXISTS live (key, create_rev, mod_rev, version, lease, mod_sub)
    AS SELECT NULL, 0, 0, 0, 0, 0 WHERE 0;
CREATE TRIGGER IF NOT EXISTS live_drop INSTEAD OF INSERT ON live BEGIN SELECT 1; END;
CREATE TABLE IF NOT EXISTS live_unused ("""
VARIANTS = ("v2", "without-rowid", "no-live")


def use_variant(variant: str) -> None:
    """Patch schema.DDL (read by schema.connect at call time) for one layout variant."""
    ddl = schema.DDL
    if variant == "without-rowid":
        table = schema.KV_TABLE.format(name="kv")
        ddl = ddl.replace(table, table + " WITHOUT ROWID")
    if variant == "no-live":
        ddl = ddl.replace(_LIVE_TABLE, _NO_LIVE).replace(
            " ON live (lease)", " ON live_unused (lease)"
        )
    assert variant == "v2" or ddl != schema.DDL, variant
    schema.DDL = ddl


def _window(store: KVStore, first: int) -> tuple[float, float, float]:
    """WINDOW puts from index `first`: (wall, applying thread CPU, other threads' CPU) s."""
    wall0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
    index = first
    for _ in range(WINDOW // BATCH):
        entries = []
        for _ in range(BATCH):
            index += 1
            put = rq.PutRequest(b"key%06d" % (index % KEYS), VALUE)
            entries.append((index, codec.encode_request(index, put)))
        store.apply_batch(entries)
    thread = time.thread_time() - thread0
    return time.perf_counter() - wall0, thread, time.process_time() - cpu0 - thread


def run(marks_mb: list[float], directory: str, repeat: int = 5) -> list[str]:
    """Fill a fresh store; past each mark, `repeat` windows, their medians on one line."""
    path = os.path.join(directory, "db")
    store = KVStore.open(path)
    lines: list[str] = []
    marks = sorted(marks_mb)
    index = 0
    try:
        while marks:
            _window(store, index)
            index += WINDOW
            size = _size_mb(path)
            if size < marks[0]:
                continue
            while marks and size >= marks[0]:
                marks.pop(0)
            samples = []
            for _ in range(repeat):
                samples.append(_window(store, index))
                index += WINDOW
            wall, thread, others = (
                statistics.median(s[i] for s in samples) / WINDOW * 1e6 for i in range(3)
            )
            lines.append(
                f"{size:7.0f} MB  wall {wall:6.1f} µs/put  apply thread {thread:6.1f} µs/put  "
                f"other threads {others:6.1f} µs/put  (medians of {repeat} x {WINDOW} puts; "
                f"{index} puts)"
            )
            print(lines[-1], flush=True)
    finally:
        store.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[50.0, 800.0])
    parser.add_argument("--dir", default=None, help="where the db goes (default: a temp dir)")
    parser.add_argument("--variant", choices=VARIANTS, default="v2")
    parser.add_argument("--repeat", type=int, default=5, help="windows measured per mark")
    args = parser.parse_args()
    if args.variant != "v2":
        use_variant(args.variant)
    code = os.path.dirname(os.path.dirname(node.__file__))
    print(f"code: {code} variant: {args.variant}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        run(args.mb, directory, args.repeat)


if __name__ == "__main__":
    main()
