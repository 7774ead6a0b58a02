"""JSON log lines with etcd's keys (level, ts, caller, msg), through stdlib logging.

Members log one JSON object per line, like etcd's zap logger, so the same log
tooling reads both. Extra fields passed as `extra={"fields": {...}}` are merged
into the object (e.g. `local-member-id`, `term`).
"""

from __future__ import annotations

import json
import logging
import sys
import time

_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error"}


class EtcdJSONFormatter(logging.Formatter):
    """One JSON object per record: level, ts (RFC 3339, microseconds), caller, msg, fields."""

    def __init__(self, static_fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self._static = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        obj: dict[str, object] = {
            "level": _LEVELS.get(record.levelname, record.levelname.lower()),
            "ts": f"{ts}.{int(record.msecs * 1000):06d}Z",
            "caller": f"{record.module}.py:{record.lineno}",
            "msg": record.getMessage(),
        }
        obj.update(self._static)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj.update(fields)
        if record.exc_info:
            obj["error"] = self.formatException(record.exc_info)
        return json.dumps(obj, separators=(",", ":"), default=str)


def configure(level: str, static_fields: dict[str, str] | None = None) -> None:
    """Route every logger to stderr as etcd-style JSON at the given etcd level name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EtcdJSONFormatter(static_fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"debug": logging.DEBUG, "warn": logging.WARNING}.get(level, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
