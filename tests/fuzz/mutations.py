"""Valid gateway requests and a seeded mutator that breaks them the ways clients do.

Each `Seed` is a valid request for one endpoint plus the typed fields in it. A
`Mutator(random.Random(seed))` picks a seed and one mutation - a field's value at an
int64/uint64 bound or in a lax spelling, an enum outside its names, base64 with bad
padding or the URL alphabet, a wrong JSON type, camelCase names, duplicate keys,
nesting up to and past Go's 10,000, sizes around --max-request-bytes, broken syntax,
oneofs with two or no members - and returns the bytes to send with a one-line label
(`kind:field=value`) that the accepted-differences table matches and failures print.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_REQUEST_BYTES = int(1.5 * 1024 * 1024)  # etcd's and raftmon's default
KEY_PREFIX = "fz/"


class Raw:
    """JSON text placed verbatim in a body (escapes, NaN, leading zeros, deep arrays)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text if len(self.text) < 60 else self.text[:57] + "..."


def dump(value: Any) -> str:
    """JSON text of a body that may hold `Raw` fragments; keys keep their order."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


# ---- seeds ------------------------------------------------------------------------------
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Enum:
    names: tuple[str, ...]
    # etcd 3.4 crashes (the process dies) on a number outside the enum for this field
    numbers_crash_etcd: bool = False
    # names the fuzzer must not send (they change cluster-wide state, e.g. ACTIVATE)
    avoid: tuple[str, ...] = ()


SORT_ORDER = Enum(("NONE", "ASCEND", "DESCEND"))
SORT_TARGET = Enum(("KEY", "VERSION", "CREATE", "MOD", "VALUE"), numbers_crash_etcd=True)
CMP_TARGET = Enum(("VERSION", "CREATE", "MOD", "VALUE", "LEASE"))
CMP_RESULT = Enum(("EQUAL", "GREATER", "LESS", "NOT_EQUAL"))
FILTER = Enum(("NOPUT", "NODELETE"))
ALARM_ACTION = Enum(
    ("GET", "ACTIVATE", "DEACTIVATE"), numbers_crash_etcd=True, avoid=("ACTIVATE", "DEACTIVATE")
)
ALARM_TYPE = Enum(("NONE", "NOSPACE", "CORRUPT"))

Kind = str | Enum  # "int64", "uint64", "bool", "bytes", "message", "list" or an enum


@dataclass(frozen=True)
class Seed:
    path: str
    body: dict[str, Any]
    fields: dict[Path, Kind] = field(default_factory=dict)
    stream: bool = False


def _range(key: str = KEY_PREFIX, end: str = "fz0") -> dict[str, Any]:
    return {
        "key": b64(key),
        "range_end": b64(end),
        "limit": "10",
        "revision": "0",
        "sort_order": "ASCEND",
        "sort_target": "KEY",
        "serializable": False,
        "keys_only": False,
        "count_only": False,
        "min_mod_revision": "0",
        "max_create_revision": "0",
    }


_RANGE_FIELDS: dict[str, Kind] = {
    "key": "bytes",
    "range_end": "bytes",
    "limit": "int64",
    "revision": "int64",
    "sort_order": SORT_ORDER,
    "sort_target": SORT_TARGET,
    "serializable": "bool",
    "keys_only": "bool",
    "count_only": "bool",
    "min_mod_revision": "int64",
    "max_create_revision": "int64",
}
_PUT_FIELDS: dict[str, Kind] = {
    "key": "bytes",
    "value": "bytes",
    "lease": "int64",
    "prev_kv": "bool",
}


def _under(prefix: Path, fields: dict[str, Kind]) -> dict[Path, Kind]:
    return {(*prefix, name): kind for name, kind in fields.items()}


def seeds() -> list[Seed]:
    txn = {
        "compare": [
            {"key": b64("fz/put"), "target": "VERSION", "result": "GREATER", "version": "0"}
        ],
        "success": [
            {"request_put": {"key": b64("fz/txn"), "value": b64("x"), "lease": "0"}},
            {"request_range": _range()},
        ],
        "failure": [{"request_delete_range": {"key": b64("fz/none"), "prev_kv": True}}],
    }
    nested = {
        "success": [
            {"request_txn": {"success": [{"request_range": _range()}], "failure": []}},
            {"request_put": {"key": b64("fz/nested"), "value": b64("y")}},
        ]
    }
    watch = {
        "create_request": {
            "key": b64(KEY_PREFIX),
            "range_end": b64("fz0"),
            "start_revision": "0",
            "progress_notify": False,
            "filters": ["NOPUT"],
            "prev_kv": True,
            "watch_id": "0",
        }
    }
    return [
        Seed(
            "/v3/kv/put",
            {"key": b64("fz/put"), "value": b64("v"), "lease": "0"},
            _under((), _PUT_FIELDS),
        ),
        Seed("/v3/kv/range", _range(), _under((), _RANGE_FIELDS)),
        Seed(
            "/v3/kv/deleterange",
            {"key": b64("fz/none"), "range_end": b64("fz/nonf"), "prev_kv": True},
            {("key",): "bytes", ("range_end",): "bytes", ("prev_kv",): "bool"},
        ),
        Seed(
            "/v3/kv/txn",
            txn,
            {
                ("compare",): "list",
                ("compare", 0, "key"): "bytes",
                ("compare", 0, "target"): CMP_TARGET,
                ("compare", 0, "result"): CMP_RESULT,
                ("compare", 0, "version"): "int64",
                ("success",): "list",
                ("success", 0): "message",
                ("success", 0, "request_put"): "message",
                **_under(("success", 0, "request_put"), _PUT_FIELDS),
                **_under(("success", 1, "request_range"), _RANGE_FIELDS),
                ("failure", 0, "request_delete_range", "key"): "bytes",
            },
        ),
        Seed(
            "/v3/kv/txn",
            nested,
            {
                ("success", 0, "request_txn"): "message",
                ("success", 0, "request_txn", "success"): "list",
                **_under(
                    ("success", 0, "request_txn", "success", 0, "request_range"), _RANGE_FIELDS
                ),
                ("success", 1, "request_put", "key"): "bytes",
            },
        ),
        Seed(
            "/v3/kv/compaction",
            {"revision": "1", "physical": False},
            {("revision",): "int64", ("physical",): "bool"},
        ),
        Seed("/v3/lease/grant", {"TTL": "60"}, {("TTL",): "int64", ("ID",): "int64"}),
        Seed("/v3/lease/revoke", {"ID": "12345"}, {("ID",): "int64"}),
        Seed(
            "/v3/lease/timetolive",
            {"ID": "12345", "keys": True},
            {("ID",): "int64", ("keys",): "bool"},
        ),
        Seed("/v3/lease/leases", {}, {}),
        Seed("/v3/maintenance/status", {}, {}),
        Seed(
            "/v3/maintenance/alarm",
            {"action": "GET", "memberID": "0", "alarm": "NONE"},
            {("action",): ALARM_ACTION, ("memberID",): "uint64", ("alarm",): ALARM_TYPE},
        ),
        Seed(
            "/v3/watch",
            watch,
            {
                ("create_request",): "message",
                ("create_request", "key"): "bytes",
                ("create_request", "range_end"): "bytes",
                ("create_request", "start_revision"): "int64",
                ("create_request", "filters"): "list",
                ("create_request", "prev_kv"): "bool",
                ("create_request", "watch_id"): "int64",
            },
            stream=True,
        ),
        Seed("/v3/lease/keepalive", {"ID": "12345"}, {("ID",): "int64"}, stream=True),
    ]


# ---- values -------------------------------------------------------------------------------
INT_VALUES: list[tuple[str, Any]] = [
    ("2**63-1", str(2**63 - 1)),
    ("2**63", str(2**63)),
    ("2**63-num", Raw(str(2**63))),
    ("2**64", str(2**64)),
    ("-2**63", str(-(2**63))),
    ("-2**63-1", str(-(2**63) - 1)),
    ("2**64-1", str(2**64 - 1)),
    ("-1", "-1"),
    ("-1-num", -1),
    ("0", 0),
    ("+1", "+1"),
    ("arabic-1", "\u0661"),
    ("1e3", Raw("1e3")),
    ("1e3-str", "1e3"),
    ("1.0", Raw("1.0")),
    ("1.5", 1.5),
    ("true", True),
    ("null", None),
    ("empty", ""),
    ("array", []),
    ("object", {}),
    ("space-1", " 1"),
    ("01", "01"),
    ("0x10", "0x10"),
    ("-0", "-0"),
    ("escaped-1", Raw('"\\u0031"')),
    ("null-str", "null"),
    ("NaN", Raw("NaN")),
    ("1_000", "1_000"),
]
B64_VALUES: list[tuple[str, Any]] = [
    ("bad-padding", "Zm9v="),
    ("short", "Zm9"),
    ("no-padding", "Zm9vYg"),
    ("one-pad", "Zm9vYg="),
    ("three-pad", "Zm9vYg==="),
    ("pad-then-data", "Zm9vYg==Zm9v"),
    ("leading-pad", "=Zm9v"),
    ("url-alphabet", "-_-_"),
    ("url-alphabet2", "Zm9v_w=="),
    ("space", "Zm 9v"),
    ("escaped-newline", Raw('"Zm9v\\n"')),
    ("escaped-crlf-inside", Raw('"Zm\\r\\n9v"')),
    ("tab", "Zm9v\t"),
    ("non-ascii", "Zm9vé"),
    ("escaped-letter", Raw('"Zm9\\u0076"')),
    ("lone-surrogate", Raw('"\\ud800"')),
    ("trailing-bits", "Zm9="),
    ("empty", ""),
    ("byte-array", [102, 122, 47]),
    ("byte-array-256", [256]),
    ("byte-array-null", [None]),
    ("byte-array-str", ["a"]),
    ("number", 1),
    ("bool", True),
    ("object", {}),
    ("nul-key", "AA=="),
    ("long-10k", b64("fz/" + "k" * 10_000)),
    ("binary", b64(bytes(range(256)))),
]
BOOL_VALUES: list[tuple[str, Any]] = [
    ("str-true", "true"),
    ("one", 1),
    ("zero", 0),
    ("null", None),
    ("array", []),
    ("object", {}),
    ("TRUE", Raw("TRUE")),
]
TYPE_VALUES: list[tuple[str, Any]] = [
    ("array", []),
    ("object", {}),
    ("string", "x"),
    ("number", 1),
    ("float", 1.5),
    ("bool", True),
    ("null", None),
    ("array-of-numbers", [1, "x"]),
    ("array-of-null", [None]),
]


ALARM = "/v3/maintenance/alarm"


def _type_values(seed: Seed) -> list[tuple[str, Any]]:
    """TYPE_VALUES, minus the number 1 for alarms: as `action` it means ACTIVATE, and
    etcd 3.4 activating an alarm for member 0 dies on a fatal bolt error - again on every
    restart, as it replays the entry (seen with 3.4.23)."""
    if seed.path == ALARM:
        return [(label, value) for label, value in TYPE_VALUES if value != 1]
    return TYPE_VALUES


def _enum_values(enum: Enum) -> list[tuple[str, Any, bool]]:
    """(label, value, outside the enum as a number)."""
    names = [n for n in enum.names if n not in enum.avoid]
    size = len(enum.names)
    out: list[tuple[str, Any, bool]] = [(n, n, False) for n in names]
    out += [
        ("lowercase", names[0].lower(), False),
        ("unknown-name", "BOGUS", False),
        ("quoted-number", "1", False),
        ("number-0", 0, False),
        ("float", Raw("1.0"), False),
        ("2**31", 2**31, False),
        ("bool", True, False),
        ("null", None, False),
        (
            "escaped-name",
            Raw('"' + "\\u00" + format(ord(names[0][0]), "x") + names[0][1:] + '"'),
            False,
        ),
        (f"number-{size + 4}", size + 4, True),
        ("number--1", -1, True),
    ]
    if not enum.avoid:
        out.append(("number-1", 1, False))
    return out


# ---- the mutator --------------------------------------------------------------------------
@dataclass
class Case:
    """One request to send to both servers."""

    seed: Seed
    label: str  # "kind:field=value"
    body: bytes

    @property
    def path(self) -> str:
        return self.seed.path

    def show(self, limit: int = 300) -> str:
        text = self.body.decode(errors="replace")
        more = f"... ({len(self.body)} bytes)" if len(text) > limit else ""
        return f"POST {self.path} [{self.label}] {text[:limit]}{more}"


def _get(body: Any, path: Path) -> Any:
    for step in path:
        body = body[step]
    return body


def _set(body: Any, path: Path, value: Any) -> None:
    _get(body, path[:-1])[path[-1]] = value


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path) or "body"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _copy(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _copy(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_copy(v) for v in body]
    return body


class Mutator:
    """Seeded and reproducible: the same `random.Random(seed)` gives the same cases."""

    def __init__(self, rng: random.Random, corpus: list[Seed] | None = None) -> None:
        self.rng = rng
        self.corpus = corpus or seeds()
        self.ops: list[tuple[int, Callable[[Seed], Case]]] = [
            (30, self.field_value),
            (10, self.wrong_type),
            (5, self.camel_case),
            (5, self.unknown_field),
            (4, self.duplicate_key),
            (6, self.nesting),
            (8, self.syntax),
            (3, self.size),
            (6, self.oneof),
            (3, self.valid),
        ]

    def cases(self, count: int) -> list[Case]:
        return [self.next() for _ in range(count)]

    def next(self) -> Case:
        seed = self.rng.choice(self.corpus)
        weights = [w for w, _ in self.ops]
        op = self.rng.choices([f for _, f in self.ops], weights)[0]
        return op(seed)

    # -- helpers
    def _case(self, seed: Seed, label: str, body: Any) -> Case:
        data = body if isinstance(body, bytes) else dump(body).encode()
        return Case(seed, label, data)

    def _pick_field(self, seed: Seed, kinds: tuple[str, ...] | None = None) -> tuple[Path, Kind]:
        items = [
            (p, k)
            for p, k in seed.fields.items()
            if kinds is None
            or (isinstance(k, str) and k in kinds)
            or (isinstance(k, Enum) and "enum" in kinds)
        ]
        if not items:
            items = [((self.rng.choice(list(seed.body) or ["key"]),), "bytes")]
        return self.rng.choice(items)

    # -- operators
    def valid(self, seed: Seed) -> Case:
        return self._case(seed, "valid:", seed.body)

    def field_value(self, seed: Seed) -> Case:
        path, kind = self._pick_field(seed, ("int64", "uint64", "bytes", "bool", "enum"))
        body = _copy(seed.body)
        if isinstance(kind, Enum):
            label, value, outside = self.rng.choice(_enum_values(kind))
            tag = "enum-out-of-range" if outside and kind.numbers_crash_etcd else "enum"
        else:
            table = {
                "int64": INT_VALUES,
                "uint64": INT_VALUES,
                "bytes": B64_VALUES,
                "bool": BOOL_VALUES,
            }
            label, value = self.rng.choice(table[kind])
            tag = {"int64": "int", "uint64": "uint", "bytes": "b64", "bool": "bool"}[kind]
        _set(body, path, value)
        return self._case(seed, f"{tag}:{_dotted(path)}={label}", body)

    def wrong_type(self, seed: Seed) -> Case:
        if self.rng.random() < 0.15:
            label, value = self.rng.choice(TYPE_VALUES)
            return self._case(seed, f"type:body={label}", value)
        path, _kind = self._pick_field(seed)
        body = _copy(seed.body)
        label, value = self.rng.choice(_type_values(seed))
        _set(body, path, value)
        return self._case(seed, f"type:{_dotted(path)}={label}", body)

    def camel_case(self, seed: Seed) -> Case:
        body = _copy(seed.body)
        _camel_all(body)
        return self._case(seed, "camel:body=all", body)

    def unknown_field(self, seed: Seed) -> Case:
        body = _copy(seed.body)
        label, value = self.rng.choice([*TYPE_VALUES, ("deep-500", Raw("[" * 500 + "]" * 500))])
        body["bogus_field"] = value
        return self._case(seed, f"unknown:bogus_field={label}", body)

    def duplicate_key(self, seed: Seed) -> Case:
        if not seed.body:
            return self.valid(seed)
        name = self.rng.choice(list(seed.body))
        text = dump(seed.body)
        bad = dump(self.rng.choice(_type_values(seed))[1])
        first = self.rng.random() < 0.5
        extra = f"{json.dumps(name)}:{bad}"
        raw = "{" + extra + "," + text[1:] if first else text[:-1] + "," + extra + "}"
        where = "bad-first" if first else "bad-last"
        return self._case(seed, f"duplicate:{name}={where}", raw.encode())

    def nesting(self, seed: Seed) -> Case:
        depth = self.rng.choice([10, 500, 999, 1000, 5000, 9998, 9999, 10000, 10001, 100_000])
        deep = Raw("[" * depth + "]" * depth)
        body = _copy(seed.body)
        if self.rng.random() < 0.5 or not seed.fields:
            body["bogus_field"] = deep
            return self._case(seed, f"depth:bogus_field={depth}", body)
        path, _kind = self._pick_field(seed)
        _set(body, path, deep)
        return self._case(seed, f"depth:{_dotted(path)}={depth}", body)

    def syntax(self, seed: Seed) -> Case:
        text = dump(seed.body).encode()
        how = self.rng.choice(
            ["truncate", "insert", "trailing", "nan", "bom", "bad-utf8", "not-object", "empty"]
        )
        if how == "truncate":
            cut = self.rng.randrange(0, max(1, len(text)))
            return self._case(seed, f"syntax:truncate={cut}", text[:cut])
        if how == "insert":
            at = self.rng.randrange(0, len(text) + 1)
            byte = self.rng.choice(b'{}[],:"\\ x01-+.eE\x00\x7f\xff')
            return self._case(
                seed, f"syntax:insert={at}:{byte:#04x}", text[:at] + bytes((byte,)) + text[at:]
            )
        if how == "trailing":
            return self._case(seed, "syntax:trailing=garbage", text + b" {garbage")
        if how == "nan":
            return self._case(
                seed,
                "syntax:nan=value",
                text[:-1] + b',"bogus_field":NaN}' if len(text) > 2 else b'{"x":NaN}',
            )
        if how == "bom":
            return self._case(seed, "syntax:bom=utf8", b"\xef\xbb\xbf" + text)
        if how == "bad-utf8":
            return self._case(
                seed,
                "syntax:bad-utf8=unknown-field",
                text[:-1] + (b"," if len(text) > 2 else b"") + b'"bogus\xff":1}',
            )
        if how == "not-object":
            return self._case(seed, "syntax:not-object=null", b"null")
        return self._case(seed, "syntax:empty=body", b"")

    def size(self, seed: Seed) -> Case:
        delta = self.rng.choice([-4096, -1024, 1024, 4096, 600 * 1024])
        n = MAX_REQUEST_BYTES + delta
        body = {"key": b64("fz/big"), "value": b64(b"x" * n)}
        big = Seed("/v3/kv/put", body, {})
        return self._case(big, f"size:value=max{delta:+d}", body)

    def oneof(self, seed: Seed) -> Case:
        txn = next(s for s in self.corpus if s.path == "/v3/kv/txn")
        body = _copy(txn.body)
        how = self.rng.choice(
            ["two-ops", "empty-op", "null-op", "null-compare", "two-targets", "deep-txn"]
        )
        if how == "two-ops":
            body["success"][0]["request_range"] = {"key": b64("fz/x")}
        elif how == "empty-op":
            body["success"].append({})
        elif how == "null-op":
            body["success"].append(None)
        elif how == "null-compare":
            body["compare"].append(None)
        elif how == "two-targets":
            body["compare"][0]["value"] = b64("x")
        else:
            depth = self.rng.choice([5, 120, 127, 128, 129, 200])
            text = '{"request_range":{"key":"' + b64("fz/") + '"}}'
            for _ in range(depth):  # as text: no recursion in the fuzzer either
                text = '{"request_txn":{"success":[' + text + "]}}"
            body = {"success": [Raw(text)]}
            how = f"deep-txn-{depth}"
        return self._case(txn, f"oneof:txn={how}", body)


def _camel_all(body: Any) -> None:
    """Rename every snake_case key to its lowerCamel JSON name, in place."""
    if isinstance(body, dict):
        for key in list(body):
            value = body.pop(key)
            _camel_all(value)
            body[_camel(key)] = value
    elif isinstance(body, list):
        for item in body:
            _camel_all(item)
