"""The two JSON paths agree, and no body makes the codec raise anything but EtcdError.

Seeded and reproducible: the fuzz corpus (tests/fuzz/mutations.py) with escapes sprinkled
into its strings and random bytes flipped.
"""

from __future__ import annotations

import random
from typing import Any

from node.api import codec, gojson
from node.errors import EtcdError
from tests.fuzz.mutations import Mutator

ESCAPES = [b"\\n", b"\\u0031", b'\\"', b"\\\\", b"\\ud800", b"\\ud83d\\ude00", b"\\/", b"\\u0000"]


def difference(a: Any, b: Any) -> str:
    """ "" when the trees are equal, RawString raw bytes included (no recursion)."""
    todo = [(a, b)]
    while todo:
        x, y = todo.pop()
        if type(x) is not type(y):
            return f"{x!r:.60} != {y!r:.60}"
        if isinstance(x, gojson.RawString) and x.raw != y.raw:
            return f"raw {x.raw!r:.60} != {y.raw!r:.60}"
        if isinstance(x, dict):
            if list(x) != list(y):
                return f"keys {list(x)[:5]} != {list(y)[:5]}"
            todo += [(x[k], y[k]) for k in x]
        elif isinstance(x, list):
            if len(x) != len(y):
                return "lengths differ"
            todo += list(zip(x, y, strict=True))
        elif x != y:
            return f"{x!r:.60} != {y!r:.60}"
    return ""


def with_escapes(rng: random.Random, raw: bytes) -> bytes:
    parts = raw.split(b'"')
    for i in range(1, len(parts), 2):
        if rng.random() < 0.3:
            parts[i] += rng.choice(ESCAPES)
    return b'"'.join(parts)


def test_the_c_decoder_path_reads_escaped_bodies_exactly_as_the_go_parser_does() -> None:
    rng = random.Random(3)
    mutator = Mutator(rng)
    checked = 0
    for _ in range(1500):
        raw = with_escapes(rng, mutator.next().body)
        fast = gojson._fast_escaped(raw) if b"\\" in raw else None
        if fast is None:
            continue
        slow, _end = gojson._value(raw, gojson._skip(raw, 0))
        assert difference(fast, slow) == "", raw[:300]
        checked += 1
    assert checked > 300


def test_no_body_makes_the_codec_raise_anything_but_etcd_error() -> None:
    rng = random.Random(5)
    mutator = Mutator(rng)
    decoders = [
        codec.put_request,
        codec.range_request,
        codec.delete_range_request,
        codec.txn_request,
        codec.compaction_request,
        codec.lease_id,
        codec.lease_grant_request,
        codec.lease_time_to_live_request,
        codec.alarm_request,
        codec.hash_kv_revision,
        codec.move_leader_target,
        codec.watch_request,
    ]
    for _ in range(1500):
        data = bytearray(mutator.next().body)
        if data and len(data) < 200_000:
            for _ in range(rng.randrange(3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        raw = bytes(data)
        try:
            start = 0
            while (found := codec.next_message(raw, start)) is not None:
                start = found[1]
        except EtcdError:
            pass
        try:
            body = codec.parse_body(raw)
        except EtcdError:
            continue
        for decode in decoders:
            try:
                decode(body)
            except EtcdError:
                pass
