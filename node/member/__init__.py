"""`raftmon node`: run one member with etcd's flags (the process: `main(argv)`)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from node.config import ConfigError, parse_config
from node.dataclass_cache import save_installed
from node.logfmt import configure

log = logging.getLogger(__name__)

# How long a thread may hold the GIL while another waits (Python's default: 5 ms). The
# member's worker threads (large range reads, slow fsyncs, snapshots) would otherwise
# make the event loop wait up to 5 ms at each of its many GIL hand-backs: during
# 100k-key ranges other clients' p99 was 280 ms at 5 ms, 64 ms at 1 ms (etcd: ~55 ms).
GIL_SWITCH_INTERVAL_SECONDS = 0.001


def main(argv: list[str]) -> int:
    try:
        cfg = parse_config(argv)
    except ConfigError as err:
        print(f"raftmon node: {err}", file=sys.stderr)
        return 2
    configure(cfg.log_level, {"name": cfg.name})
    log.info("process started")  # a restart's break-down: interpreter, imports, flags
    # A member is started again and again (every restart, every lab run): it keeps the
    # bytecode of what it imports, as an installed package does, even where the
    # environment asks Python not to write any (PYTHONDONTWRITEBYTECODE): compiling
    # ~130 modules from source cost ~0.4 s of CPU per start, the largest part of a
    # restart's time to the first write (tests/bench/test_restart_bench.py).
    sys.dont_write_bytecode = False
    # No cyclic garbage collection while the member starts: imports, the WAL replay and
    # the key index allocate hundreds of thousands of objects that all stay, and the
    # collector walked them again and again (~20% of the start's CPU). serve() freezes
    # them once the server is built and turns collection back on.
    gc.disable()
    # NB: imported here so `raftmon node --help` works without the server's imports
    from node.member.serve import serve
    from node.mvcc.store import BackendCorruptError
    from node.server.corruption import CorruptionError
    from node.wal import WALCorruptError

    save_installed()  # the dataclass methods compiled for these imports, for the next start
    try:
        import uvloop  # a faster event loop: fewer µs per request and per peer message

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    try:
        asyncio.run(serve(cfg))
    except WALCorruptError as err:
        log.error("refusing to start: WAL is corrupt", extra={"fields": {"error": str(err)}})
        return 1
    except BackendCorruptError as err:
        log.error(
            "refusing to start: backend database is damaged",
            extra={"fields": {"path": err.path, "error": str(err)}},
        )
        return 1
    except CorruptionError as err:
        log.error(
            "refusing to start: the initial corruption check failed",
            extra={"fields": {"error": str(err)}},
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0
