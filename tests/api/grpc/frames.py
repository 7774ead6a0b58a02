"""Raw HTTP/2 frames for tests that drive `GrpcConnection` directly, with no grpcio client:
a transport that keeps what the server writes, and frame builders and splitters."""

from __future__ import annotations

import struct

PATH = b"/etcdserverpb.KV/Put"
# RFC 7541 6.2.2: a literal header field without indexing, new name (the table stays empty)
PATH_BLOCK = b"\x00" + bytes([len(b":path")]) + b":path" + bytes([len(PATH)]) + PATH


class Wire:
    """A transport that keeps every write (the protocol asks nothing else of it here)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        pass


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: the 9-byte head (24-bit length, type, flags, stream id) and `payload`."""
    n = len(payload)
    return struct.pack(">HBBBI", n >> 8, n & 0xFF, kind, flags, stream_id) + payload


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(kind, flags, stream id, payload) of every frame in `data`."""
    out = []
    while data:
        hi, lo, kind, flags, sid = struct.unpack(">HBBBI", data[:9])
        n = (hi << 8) | lo
        out.append((kind, flags, sid, data[9 : 9 + n]))
        data = data[9 + n :]
    return out
