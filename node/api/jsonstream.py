"""Split a streamed request body into JSON messages, in time linear in its bytes.

A gateway stream (POST /v3/watch, /v3/lease/keepalive) is a sequence of JSON
values, as grpc-gateway's json.Decoder reads them. The body arrives in chunks
of any size: one byte at a time, a UTF-8 character cut in two, a message that
never ends. Re-parsing the whole pending text on every chunk costs O(n^2) (a
slow client fed 8 MB byte by byte and took 9 CPU-seconds from every other
client), so the splitter scans only the new characters, keeping a little
state (depth, inside a string, after a backslash) between chunks, and hands
each complete message to the JSON parser exactly once.

The splitter only finds where a message ends; the parser judges it. Brackets
are counted without matching their kinds (`{]` ends a message, which the
parser then refuses), and one message may not grow past `max_message_chars`:
a message that never ends is refused instead of buffered for ever.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_STRUCTURE = re.compile(r'["{}\[\]]')  # what changes state outside a string
_IN_STRING = re.compile(r'["\\]')  # what changes state inside one
_NOT_SPACE = re.compile(r"[^ \t\r\n]")  # JSON's whitespace, as Go's scanner skips it
_TOKEN_END = re.compile(r'[ \t\r\n{}\[\],:"]')  # the end of a bare scalar (number, true, ...)


class MessageTooLarge(Exception):
    """One message grew past the limit before it ended."""

    def __init__(self, size: int) -> None:
        super().__init__(f"message of at least {size} characters")
        self.size = size


@dataclass(slots=True)
class _State:
    kind: str = ""  # "" between messages, "container", "string" or "scalar" (top level)
    depth: int = 0  # open brackets of the current container message
    in_string: bool = False
    escaped: bool = False  # the previous character was a backslash inside a string


def _stops(s: _State) -> re.Pattern[str]:
    """The characters that can change state `s`; the scan jumps from one to the next."""
    if not s.kind:
        return _NOT_SPACE
    if s.kind == "scalar":
        return _TOKEN_END
    return _IN_STRING if s.in_string else _STRUCTURE


class MessageSplitter:
    """Feed bytes, get complete JSON messages (as text) out; see the module docstring."""

    def __init__(self, max_message_chars: int) -> None:
        self.max_message_chars = max_message_chars
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._parts: list[str] = []  # the current message's text so far
        self._size = 0
        self._s = _State()

    @property
    def pending(self) -> bool:
        """True when a message has started and not ended (the body must not end now)."""
        return bool(self._s.kind)

    def feed(self, data: bytes) -> list[str]:
        """The messages completed by `data`, in order; raises MessageTooLarge."""
        # NB: the incremental decoder keeps a character cut between two chunks until its
        # last bytes arrive; invalid bytes become U+FFFD, as Go's decoder reads them.
        return self._scan(self._utf8.decode(data))

    def end(self) -> tuple[list[str], bool]:
        """The body ended: the messages it completed, and whether one was left unfinished.

        A bare scalar is complete at the end of the body (`5` is a message the parser
        refuses with its own words); an open string or container is not.
        """
        done = self._scan(self._utf8.decode(b"", final=True))
        unfinished = False
        if self._s.kind == "scalar":
            done.append("".join(self._parts))
        elif self._s.kind:
            unfinished = True
        self._parts, self._size, self._s = [], 0, _State()
        return done, unfinished

    def _scan(self, text: str) -> list[str]:
        out: list[str] = []
        s = self._s
        i, n = 0, len(text)
        start = 0  # where the current message begins in `text`
        while i < n:
            if s.escaped:  # the character after a backslash never changes the state
                s.escaped = False
                i += 1
                continue
            m = _stops(s).search(text, i)
            if m is None:
                if not s.kind:
                    start = n  # only white space: no message has begun
                break
            c, at = m.group(), m.start()
            if not s.kind:
                start = at
                if c in "{[":
                    s.kind, s.depth = "container", 1
                elif c == '"':
                    s.kind, s.in_string = "string", True
                else:
                    s.kind = "scalar"
                    # a scalar's first character is its own: `}` alone must reach the parser
                i = at + 1
            elif s.kind == "scalar":
                i = at  # the character that ends a scalar belongs to what follows
                out.append(self._take(text, start, i))
                start = i
            elif s.in_string:
                i = at + 1
                if c == "\\":
                    s.escaped = True
                    continue
                s.in_string = False
                if s.kind == "string":
                    out.append(self._take(text, start, i))
                    start = i
            else:
                i = at + 1
                if c == '"':
                    s.in_string = True
                elif c in "{[":
                    s.depth += 1
                else:
                    s.depth -= 1
                    if s.depth == 0:
                        out.append(self._take(text, start, i))
                        start = i
        if s.kind and start < n:
            self._parts.append(text[start:n])
            self._size += n - start
            if self._size > self.max_message_chars:
                raise MessageTooLarge(self._size)
        return out

    def _take(self, text: str, start: int, end: int) -> str:
        """The message that ends at `end`: earlier parts plus text[start:end]."""
        size = self._size + end - start
        if size > self.max_message_chars:
            raise MessageTooLarge(size)
        if self._parts:
            self._parts.append(text[start:end])
            message = "".join(self._parts)
            self._parts = []
        else:
            message = text[start:end]
        self._size = 0
        self._s.kind, self._s.depth, self._s.in_string, self._s.escaped = "", 0, False, False
        return message
