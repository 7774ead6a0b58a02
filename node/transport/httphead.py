"""The few HTTP/1.1 heads a peer stream needs, read and written without an HTTP library.

A member's Raft streams must connect before aiohttp is imported (it costs ~0.2 s of CPU
at start, and three members restarted together share two cores): a stream is one GET
with `Upgrade: tcp` answered `101`, after which the connection carries frames only, so
the request head, the 101 and a refusal's short text answer are all of HTTP it needs. A
snapshot upload is one POST with a Content-Length body, answered 204 or a short text.
Everything else on the peer port (member info, plain probes) is aiohttp's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 16 * 1024  # a peer's stream request is ~250 bytes; anything past this is abuse

REASONS = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HeadError(ValueError):
    """Bytes that are not an HTTP/1.x head."""


class Headers(Mapping[str, str]):
    """Header fields looked up case-insensitively (a repeated field keeps its last value)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | None = None) -> None:
        self._fields = {k.lower(): v for k, v in (fields or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


class RequestHead:
    """A request line and its header fields (a plain class: a dataclass costs ~0.5 ms of
    CPU to create at import, and a member's start is what this module is for)."""

    __slots__ = ("headers", "method", "target")

    def __init__(self, method: str, target: str, headers: Headers) -> None:
        self.method = method
        self.target = target
        self.headers = headers

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


class ResponseHead:
    """A status line's code and the header fields."""

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers


def _fields(lines: list[bytes]) -> Headers:
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise HeadError(f"malformed header line {line[:80]!r}")
        fields[name.decode("latin-1")] = value.strip().decode("latin-1")
    return Headers(fields)


def parse_request(head: bytes) -> RequestHead:
    """`head`: the bytes up to (not including) the blank line that ends it."""
    first, *rest = head.split(b"\r\n")
    parts = first.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HeadError(f"malformed request line {first[:80]!r}")
    return RequestHead(parts[0].decode("latin-1"), parts[1].decode("latin-1"), _fields(rest))


def parse_response(head: bytes) -> ResponseHead:
    first, *rest = head.split(b"\r\n")
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HeadError(f"malformed status line {first[:80]!r}")
    return ResponseHead(int(parts[1]), _fields(rest))


def request(method: str, target: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(status: int, headers: Mapping[str, str], body: bytes = b"") -> bytes:
    """A whole response; with a body (or any status but 101 and 204, which have none by
    definition, RFC 9110 §8.6) it says its length."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if status not in (101, 204):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def text_response(status: int, text: str, headers: Mapping[str, str] | None = None) -> bytes:
    """A refusal as aiohttp's `web.Response(text=...)` writes it, closing the connection."""
    fields = {
        "Content-Type": "text/plain; charset=utf-8",
        "Connection": "close",
        **(headers or {}),
    }
    return response(status, fields, text.encode())
