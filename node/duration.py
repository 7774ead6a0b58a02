"""Go's duration syntax ("30ms", "1h30m"), for flags that take one.

A base module: the config parses flags with it, and the mvcc compactor reads
etcd's --auto-compaction-retention with it (a count of hours or a duration), so
it lives below both.
"""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Go-style duration ("30ms", "1h30m", "0") -> seconds; a bare number means seconds.

    Raises ValueError with a message fit for a flag's error.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r} (examples: 30ms, 1.5s, 5m)")
    return total
