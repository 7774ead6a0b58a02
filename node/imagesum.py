"""Checksums of database images (snapshot uploads, images at rest), by name.

Why CRC-32C: an image is summed whole on each side of an upload, in the catch-up window
that is CPU-bound on this 2-core box (issue 17). The `crc32c` package's SSE4.2 code sums
51 MiB in ~2.6 ms where `zlib.crc32` (IEEE) takes ~23 ms, and it too releases the GIL
for buffers of 32 KiB and more. Why names: the kind travels with the sum (a header of
the upload, a field of a .snap file), so a reader refuses a kind it does not know with
a clear error instead of calling the image corrupt; a writer that names no kind is an
older one and used CRC-32 (IEEE).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

Checksum = Callable[[bytes | memoryview, int], int]  # (data, running value) -> running value

CRC32C = "crc32c"
CRC32 = "crc32"  # IEEE: what images were summed with before kinds had names
DEFAULT = CRC32C
LEGACY = CRC32


@functools.cache
def _crc32c_function() -> Checksum:
    import crc32c  # deferred: see _crc32c

    return crc32c.crc32c


def _crc32c(data: bytes | memoryview, value: int) -> int:
    """CRC-32C, the `crc32c` package imported at the first image summed rather than at
    start: its package import reads installed distributions' metadata (importlib.metadata,
    ~20 ms of CPU), paid by every member start, where three members restarted together
    share two cores before their first election (issue 17's restart run)."""
    return _crc32c_function()(data, value)


_KINDS: dict[str, Checksum] = {CRC32C: _crc32c, CRC32: zlib.crc32}


class UnknownChecksum(ValueError):
    """A checksum kind this member cannot compute."""


def by_name(kind: str) -> Checksum:
    """The function computing checksum `kind`; UnknownChecksum when there is none."""
    try:
        return _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS))
        raise UnknownChecksum(
            f"unknown image checksum kind {kind[:40]!r} (this member knows {known})"
        ) from None


def default() -> Checksum:
    """The function computing the kind new images are summed with (DEFAULT)."""
    return _KINDS[DEFAULT]
