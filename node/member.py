"""`raftmon node`: run one member with etcd's flags."""

from __future__ import annotations

import asyncio
import logging
import sys

from node.config import ConfigError, parse_config
from node.logfmt import configure

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    try:
        cfg = parse_config(argv)
    except ConfigError as err:
        print(f"raftmon node: {err}", file=sys.stderr)
        return 2
    configure(cfg.log_level, {"name": cfg.name})
    # NB: imported here so `raftmon node --help` works without the server's imports
    from node.mvcc.store import BackendCorruptError
    from node.server import serve
    from node.wal import WALCorruptError

    try:
        import uvloop  # a faster event loop: fewer µs per request and per peer message

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
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
    except KeyboardInterrupt:
        pass
    return 0
