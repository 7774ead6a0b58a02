"""JSON text -> Python values exactly as Go's encoding/json reads it (etcd 3.4's gateway).

etcd's gateway decodes a body with Go's `json.Decoder` (one value; bytes after it are
never read) and then jsonpb, which calls `json.Unmarshal` on pieces of it. Where
Python's `json` differs, a client would see a different answer from raftmon, so:

- Syntax errors carry Go's words and byte ("invalid character 'x' after object
  key:value pair"), "unexpected EOF" from the Decoder, "unexpected end of JSON input"
  from Unmarshal.
- Nesting deeper than Go's 10,000 is refused as Go refuses it; nesting below that
  never touches Python's recursion limit (the fallback parser is iterative).
- NaN / Infinity are syntax errors; invalid UTF-8 inside strings becomes U+FFFD.
- Numbers keep their text when it is not a plain integer (`Number`), so an int64
  field can say "cannot unmarshal number 1e3"; strings written with escapes keep
  their raw bytes (`RawString`), because jsonpb reads a quoted int64 from the raw
  bytes between the quotes ("\\u0031" is not 1 for etcd).

The common case (no backslash, valid UTF-8, shallow) runs through the C decoder; any
failure falls back to the iterative parser, which decides the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

MAX_DEPTH: Final = 10_000  # Go's encoding/json maxNestingDepth


class GoSyntaxError(ValueError):
    """A body Go's decoder refuses; str() is Go's message."""


class Number:
    """A JSON number that is not a plain integer literal ("1.0", "1e3", "-0"): Go's text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Number({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Number) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class RawString(str):
    """A string written with escapes; `raw` is the bytes between its quotes, as sent."""

    raw: bytes

    def __new__(cls, value: str, raw: bytes) -> RawString:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


class _Empty:
    """No value before EOF: the Decoder's io.EOF, which the gateway treats as `{}`."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY: Final = _Empty()


def raw_bytes(value: str) -> bytes:
    """The bytes between a string's quotes as the client sent them (jsonpb's view)."""
    return value.raw if isinstance(value, RawString) else value.encode()


# ---- Go's wording --------------------------------------------------------------------
_NAMED_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def quote_char(c: int) -> str:
    """Go's quoteChar: one byte shown as the rune of the same value, quoted."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        return "'\\\\'"
    if c in _NAMED_ESCAPES:
        return f"'{_NAMED_ESCAPES[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    ch = chr(c)
    return f"'{ch}'" if ch.isprintable() else f"'\\u{c:04x}'"


def go_quote(data: bytes) -> str:
    """Go's strconv.Quote (%q) of raw bytes, for messages such as "unknown value %q"."""
    out = ['"']
    for ch in data.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0xDC80 <= code <= 0xDCFF:  # an invalid UTF-8 byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[code])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _error(c: int, context: str) -> GoSyntaxError:
    return GoSyntaxError(f"invalid character {quote_char(c)} {context}")


class _EOF(Exception):
    """The input ended inside a value; the caller picks Go's wording for its mode."""


# ---- the fast path -----------------------------------------------------------------------
def _no_constants(name: str) -> Any:
    raise ValueError(name)  # NaN/Infinity: Go's syntax error comes from the slow path


def _int_literal(text: str) -> Any:
    return Number(text) if text == "-0" else int(text)


_FAST = json.JSONDecoder(parse_float=Number, parse_int=_int_literal, parse_constant=_no_constants)
_WS = " \t\r\n"


def _fast(raw: bytes, start: int = 0, escapes: bool = False) -> tuple[Any, int] | None:
    """The C decoder's (value, end byte) when it gives Go's answer for sure, else None.

    None also when no value starts before the end (the caller decides what that means).
    With `escapes`, a body with backslashes is read too (see `_fast_escaped`).
    """
    if b"\\" in raw and not escapes:
        return None
    try:
        text = raw[start:].decode()
    except UnicodeDecodeError:
        return None
    lead = len(text) - len(text.lstrip(_WS))
    if lead == len(text):
        return None
    try:
        value, end = _FAST.raw_decode(text, lead)
    except (ValueError, RecursionError):
        return None
    if not text.isascii():
        end = len(text[:end].encode())
    return value, start + end


# A string literal holding an escape, not followed by ':' (object keys are left alone:
# jsonpb matches field names unescaped, as the C decoder gives them).
_ESCAPED_VALUE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)+"(?![ \t\r\n]*:)', re.S)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_MARK = "\x00"  # no decoded string starts so: a raw NUL is invalid JSON, "\u0000" is marked


def _fast_escaped(raw: bytes) -> Any:
    """A body with backslashes through the C decoder, escaped strings kept raw; None = no.

    The C decoder first proves the body valid (so backslashes sit only inside strings and
    every match of _ESCAPED_VALUE is a whole string literal); then each escaped value
    literal is swapped for a marker, decoded again, and the markers become RawStrings
    with Go's unescaping. Costs two C passes instead of the token-by-token parser.
    """
    first = _fast(raw, escapes=True)
    if first is None:
        return None
    prefix = raw[: first[1]]
    literals: list[bytes] = []

    def mark(m: re.Match[bytes]) -> bytes:
        literals.append(m.group()[1:-1])
        return b'"\\u0000%d"' % (len(literals) - 1)

    marked = _ESCAPED_VALUE.sub(mark, prefix)
    if _SURROGATE_ESCAPE.search(marked):
        return None  # a key with a \uD8xx escape: Go's U+FFFD rules need the slow parser
    second = _fast(marked, escapes=True)
    if second is None:
        return None
    value = second[0]
    if isinstance(value, str):
        return _unmark(value, literals)
    todo: list[Any] = [value] if isinstance(value, (dict, list)) else []
    while todo:
        node = todo.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            if type(v) is str:
                if v[:1] == _MARK:
                    node[k] = _unmark(v, literals)
            elif isinstance(v, (dict, list)):
                todo.append(v)
    return value


def _unmark(value: str, literals: list[bytes]) -> str:
    if value[:1] != _MARK:
        return value
    raw = literals[int(value[1:])]
    return RawString(_unescape(raw), raw)


# ---- the iterative parser ------------------------------------------------------------------
_SPACE = re.compile(rb"[ \t\r\n]*")
_STR_RUN = re.compile(rb'[^"\\\x00-\x1f]*')
_DIGITS = re.compile(rb"[0-9]*")
_ESCAPE = re.compile(rb'\\(?:u([0-9A-Fa-f]{4})|(["\\/bfnrt]))')
_SIMPLE_ESCAPES = {
    b'"': '"',
    b"\\": "\\",
    b"/": "/",
    b"b": "\b",
    b"f": "\f",
    b"n": "\n",
    b"r": "\r",
    b"t": "\t",
}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_LITERALS = {0x74: (b"true", True), 0x66: (b"false", False), 0x6E: (b"null", None)}


def _string(data: bytes, i: int) -> tuple[str, int]:
    """The string starting at data[i] == '"'; returns (value, index after the quote)."""
    n = len(data)
    j = i + 1
    escaped = False
    while True:
        j = _STR_RUN.match(data, j).end()  # type: ignore[union-attr]
        if j >= n:
            raise _EOF
        c = data[j]
        if c == 0x22:
            break
        if c != 0x5C:
            raise _error(c, "in string literal")
        escaped = True
        if j + 1 >= n:
            raise _EOF
        e = data[j + 1]
        if e == 0x75:  # \uXXXX
            for k in range(j + 2, j + 6):
                if k >= n:
                    raise _EOF
                if data[k] not in _HEX:
                    raise _error(data[k], "in \\u hexadecimal character escape")
            j += 6
        elif bytes((e,)) in _SIMPLE_ESCAPES:
            j += 2
        else:
            raise _error(e, "in string escape code")
    raw = data[i + 1 : j]
    if not escaped:
        return raw.decode("utf-8", "replace"), j + 1
    return RawString(_unescape(raw), raw), j + 1


def _unescape(raw: bytes) -> str:
    """Go's unquote: escapes resolved, surrogate pairs joined, lone halves -> U+FFFD."""
    parts: list[str] = []
    pos = 0
    pending_high: int | None = None
    for m in _ESCAPE.finditer(raw):
        if m.start() > pos:
            if pending_high is not None:
                parts.append("\ufffd")
                pending_high = None
            parts.append(raw[pos : m.start()].decode("utf-8", "replace"))
        pos = m.end()
        if m.group(2) is not None:
            if pending_high is not None:
                parts.append("\ufffd")
                pending_high = None
            parts.append(_SIMPLE_ESCAPES[m.group(2)])
            continue
        code = int(m.group(1), 16)
        if pending_high is not None:
            if 0xDC00 <= code <= 0xDFFF:
                parts.append(chr(0x10000 + ((pending_high - 0xD800) << 10) + (code - 0xDC00)))
                pending_high = None
                continue
            parts.append("\ufffd")
            pending_high = None
        if 0xD800 <= code <= 0xDBFF:
            pending_high = code
        elif 0xDC00 <= code <= 0xDFFF:
            parts.append("\ufffd")
        else:
            parts.append(chr(code))
    if pending_high is not None:
        parts.append("\ufffd")
    parts.append(raw[pos:].decode("utf-8", "replace"))
    return "".join(parts)


def _digit_at(data: bytes, j: int, where: str) -> None:
    """Go's error unless data[j] is a digit (the end of the input is an unexpected EOF)."""
    if j >= len(data):
        raise _EOF
    if not 0x30 <= data[j] <= 0x39:
        raise _error(data[j], where)


def _digits_end(data: bytes, j: int, where: str) -> int:
    """The end of the run of digits that must start at data[j]."""
    _digit_at(data, j, where)
    return _DIGITS.match(data, j).end()  # type: ignore[union-attr]


def _number(data: bytes, i: int) -> tuple[Any, int]:
    """The number starting at data[i] ('-' or a digit), with Go's errors."""
    n = len(data)
    j = i
    if data[j] == 0x2D:  # '-'
        j += 1
        _digit_at(data, j, "in numeric literal")
    j = j + 1 if data[j] == 0x30 else _digits_end(data, j, "in numeric literal")
    plain = True
    if j < n and data[j] == 0x2E:  # '.'
        plain = False
        j = _digits_end(data, j + 1, "after decimal point in numeric literal")
    if j < n and data[j] in b"eE":
        plain = False
        j += 1
        if j < n and data[j] in b"+-":
            j += 1
        j = _digits_end(data, j, "in exponent of numeric literal")
    text = data[i:j].decode("ascii")
    return (int(text) if plain and text != "-0" else Number(text)), j


def _literal(data: bytes, i: int) -> tuple[Any, int]:
    word, value = _LITERALS[data[i]]
    for k in range(1, len(word)):
        if i + k >= len(data):
            raise _EOF
        if data[i + k] != word[k]:
            name = word.decode()
            raise _error(data[i + k], f"in literal {name} (expecting {quote_char(word[k])})")
    return value, i + len(word)


def _skip(data: bytes, i: int) -> int:
    return _SPACE.match(data, i).end()  # type: ignore[union-attr]


def _key(data: bytes, i: int) -> tuple[str, int]:
    """An object key and the ':' after it; i is past '{' or ','."""
    i = _skip(data, i)
    if i >= len(data):
        raise _EOF
    if data[i] != 0x22:
        raise _error(data[i], "looking for beginning of object key string")
    key, i = _string(data, i)
    i = _skip(data, i)
    if i >= len(data):
        raise _EOF
    if data[i] != 0x3A:
        raise _error(data[i], "after object key")
    return key, i + 1


def _value(data: bytes, i: int) -> tuple[Any, int]:
    """One complete value starting at data[i] (whitespace already skipped); no recursion."""
    n = len(data)
    # Each open container: [container, pending key]; containers are attached when opened.
    stack: list[list[Any]] = []
    while True:
        i = _skip(data, i)
        if i >= n:
            raise _EOF
        c = data[i]
        value: Any
        if c == 0x7B or c == 0x5B:  # '{' '['
            if len(stack) + 1 > MAX_DEPTH:
                raise _error(c, "exceeded max depth")
            j = _skip(data, i + 1)
            if j >= n:
                raise _EOF
            if c == 0x7B:
                if data[j] == 0x7D:
                    value, i = {}, j + 1
                else:
                    key, i = _key(data, i + 1)
                    stack.append([{}, key])
                    continue
            elif data[j] == 0x5D:
                value, i = [], j + 1
            else:
                stack.append([[], None])
                i = i + 1
                continue
        elif c == 0x22:
            value, i = _string(data, i)
        elif c == 0x2D or 0x30 <= c <= 0x39:
            value, i = _number(data, i)
        elif c in _LITERALS:
            value, i = _literal(data, i)
        else:
            raise _error(c, "looking for beginning of value")
        # A value is complete: attach it, then close every container that ends here.
        while True:
            if not stack:
                return value, i
            top = stack[-1]
            container = top[0]
            if isinstance(container, dict):
                container[top[1]] = value
            else:
                container.append(value)
            i = _skip(data, i)
            if i >= n:
                raise _EOF
            c = data[i]
            if isinstance(container, dict):
                if c == 0x2C:
                    top[1], i = _key(data, i + 1)
                    break
                if c != 0x7D:
                    raise _error(c, "after object key:value pair")
            else:
                if c == 0x2C:
                    i += 1
                    break
                if c != 0x5D:
                    raise _error(c, "after array element")
            stack.pop()
            value, i = container, i + 1


# ---- entry points ------------------------------------------------------------------------
def decode(raw: bytes) -> Any:
    """What grpc-gateway's json.Decoder reads from a body: one value, or EMPTY at EOF."""
    fast = _fast(raw)
    if fast is not None:
        return fast[0]
    if b"\\" in raw:
        value = _fast_escaped(raw)
        if value is not None:
            return value
    i = _skip(raw, 0)
    if i >= len(raw):
        return EMPTY
    try:
        return _value(raw, i)[0]
    except _EOF:
        raise GoSyntaxError("unexpected EOF") from None


def decode_prefix(raw: bytes, start: int = 0) -> tuple[Any, int] | None:
    """The next value of a stream of values and the byte after it; None until it is whole.

    For streamed bodies (watch, keep-alive), which Go's Decoder reads one message at a
    time. Syntax errors raise GoSyntaxError as soon as the bytes seen prove them.
    """
    found = _fast(raw, start)
    if found is None:
        i = _skip(raw, start)
        if i >= len(raw):
            return None
        try:
            found = _value(raw, i)
        except _EOF:
            return None
    value, end = found
    # A number at the very end may still grow ("12" then "3"): wait for a delimiter.
    if end >= len(raw) and isinstance(value, (int, Number)) and not isinstance(value, bool):
        return None
    return value, end


def unmarshal(raw: bytes) -> Any:
    """json.Unmarshal's reading: the whole input is exactly one value."""
    i = _skip(raw, 0)
    if i >= len(raw):
        raise GoSyntaxError("unexpected end of JSON input")
    try:
        value, end = _value(raw, i)
    except _EOF:
        raise GoSyntaxError("unexpected end of JSON input") from None
    end = _skip(raw, end)
    if end < len(raw):
        raise _error(raw[end], "after top-level value")
    return value


def go_type_name(value: Any) -> str:
    """The JSON kind Go names in "cannot unmarshal X into Go value of type T"."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, Number)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
