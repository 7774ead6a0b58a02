"""A raw HTTP/1.1 client for streamed request bodies: chunks exactly as the test cuts them.

http.client and aiohttp hide how a body is cut into chunks and when it ends; the
gateway's stream tests need both (a UTF-8 character split across two chunks, a
body that is never terminated), so this speaks chunked transfer encoding itself.
Every read is bounded by the socket timeout.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit


class ChunkedPost:
    """POST `path` with `Transfer-Encoding: chunked`; send chunks; read the answer."""

    def __init__(self, url: str, path: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.sock.sendall(head.encode())
        self._buf = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunked = False
        self._length: int | None = None

    def send(self, data: bytes) -> None:
        if data:
            self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")

    def end(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ChunkedPost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the answer ---------------------------------------------------------------
    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self._buf += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise EOFError("connection closed")
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def read_head(self) -> int:
        """Read the status line and headers; return the status."""
        self.status = int(self._line().split()[1])
        while line := self._line():
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding") == "chunked"
        if "content-length" in self.headers:
            self._length = int(self.headers["content-length"])
        return self.status

    def read_piece(self) -> bytes | None:
        """The next chunk of the answer (the whole body if not chunked); None at its end."""
        if not self._chunked:
            if self._length is None:
                return None
            while len(self._buf) < self._length:
                if not self._fill():
                    raise EOFError("connection closed")
            body, self._buf, self._length = self._buf[: self._length], b"", None
            return body
        size = int(self._line().split(b";")[0], 16)
        if size == 0:
            return None
        while len(self._buf) < size + 2:
            if not self._fill():
                raise EOFError("connection closed")
        piece, self._buf = self._buf[:size], self._buf[size + 2 :]
        return piece

    def read_messages(self, count: int) -> list[Any]:
        """`count` JSON messages of a streamed answer (fewer if it ends first)."""
        out: list[Any] = []
        pending = b""
        while len(out) < count:
            piece = self.read_piece()
            if piece is None:
                break
            pending += piece
            while b"\n" in pending and len(out) < count:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    out.append(json.loads(line))
        if pending.strip():
            out.append(json.loads(pending))
        return out
