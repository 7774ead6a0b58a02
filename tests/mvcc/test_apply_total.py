"""Apply is total: whatever a committed entry holds, every member answers it and lives.

Hypothesis draws sequences of arbitrary requests, with every int anywhere in its
field's range, enum numbers outside their enums, txns nested deep, and raw bytes
that are no request at all, and applies them, as entries of the Raft log, to two
stores that start empty. The properties checked after every entry:
- nothing escapes `apply_batch` (an escape would stop the member, and the replay
  of the same entry after a restart would stop it again);
- both stores give the same result and reach the same state (apply is a function
  of the entry and the state before it);
- an entry answered with an error changes nothing, on disk or in memory.
The runs are derandomized, so CI sees the same examples every time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import tempfile
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.mvcc import codec
from node.mvcc import requests as rq
from node.mvcc.store import ApplyResult, KVStore

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

I64 = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([-(2**63), 2**63 - 1, 2**63 - 2, 2**31, -1]),
    st.integers(-(2**63), 2**63 - 1),
)
U64 = st.one_of(st.integers(0, 3), st.integers(0, 2**64 - 1))
ENUM = st.one_of(st.integers(-2, 6), st.sampled_from([99, -(2**63), 2**63 - 1]))
KEYS = st.one_of(st.sampled_from([b"", b"a", b"b", b"k", b"\0", b"\xff"]), st.binary(max_size=6))
R = TypeVar("R", bound="DataclassInstance")  # a request dataclass


def _request(cls: type[R], **given: st.SearchStrategy[Any]) -> st.SearchStrategy[R]:
    """`cls` with each field drawn by its type (ints over all of int64), unless `given`."""
    by_type: dict[str, st.SearchStrategy[Any]] = {"bytes": KEYS, "int": I64, "bool": st.booleans()}
    drawn = {f.name: given.get(f.name, by_type[str(f.type)]) for f in dataclasses.fields(cls)}
    return st.builds(cls, **drawn)


def _put() -> st.SearchStrategy[rq.PutRequest]:
    lease = st.one_of(st.just(0), st.sampled_from([1, 2]), I64)
    return _request(rq.PutRequest, value=st.binary(max_size=8), lease=lease)


def _range() -> st.SearchStrategy[rq.RangeRequest]:
    return _request(rq.RangeRequest, sort_order=ENUM, sort_target=ENUM)


def _delete() -> st.SearchStrategy[rq.DeleteRangeRequest]:
    return _request(rq.DeleteRangeRequest)


def _compare() -> st.SearchStrategy[rq.Compare]:
    return _request(rq.Compare, target=ENUM, result=ENUM, value=st.binary(max_size=4))


def _txn(ops: st.SearchStrategy[Any]) -> st.SearchStrategy[rq.TxnRequest]:
    return st.builds(
        rq.TxnRequest,
        compare=st.lists(_compare(), max_size=3),
        success=st.lists(ops, max_size=4),
        failure=st.lists(ops, max_size=4),
    )


OPS = st.recursive(st.one_of(_put(), _range(), _delete()), _txn, max_leaves=12)

REQUESTS = st.one_of(
    _put(),
    _range(),
    _delete(),
    _txn(OPS),
    st.builds(rq.CompactionRequest, revision=I64, physical=st.booleans()),
    st.builds(rq.LeaseGrantRequest, ttl=I64, id=st.one_of(st.sampled_from([0, 1, 2]), I64)),
    st.builds(rq.LeaseRevokeRequest, id=st.one_of(st.sampled_from([1, 2]), I64)),
    st.builds(rq.AlarmRequest, action=ENUM, member_id=U64, alarm=ENUM),
)

# An entry is an encoded request, or bytes that may be no request at all.
ENTRIES = st.one_of(
    REQUESTS.map(lambda req: codec.encode_request(7, req)),
    st.binary(max_size=40),
    REQUESTS.map(lambda req: codec.encode_request(7, req)[:-1]),  # torn
)


def _deep_txn_entry(depth: int) -> bytes:
    """A txn nested `depth` levels, built as bytes (encoding it would recurse as deep).

    Validation before proposing bounds nesting, but a log written by another build, or
    by a bug, is not validated: decode and apply must answer it all the same.
    """
    body = codec.encode_request(0, rq.TxnRequest(success=[rq.PutRequest(b"deep", b"x")]))[10:]
    header = codec.encode_request(0, rq.TxnRequest())[:10]
    none, one = struct.pack("<I", 0), struct.pack("<I", 1)
    for _ in range(depth):
        body = none + one + b"\x04" + body + none
    return header + body


def _state(store: KVStore) -> str:
    """A digest of everything a request could change: tables, revisions, the memory mirror."""
    conn = store._db()
    h = hashlib.sha256()
    h.update(repr(sorted(_live_table(store).items())).encode())
    for table, order in (
        ("kv", "id"),
        ("lease", "id"),
        ("alarm", "member_id, type"),
    ):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
            h.update(repr(row).encode())
    s = store._state
    h.update(repr((s.current_rev, s.compact_rev, s.keys_total)).encode())
    h.update(repr(sorted(s.live.items())).encode())
    h.update(repr(sorted(s.leases.items())).encode())
    h.update(repr(sorted(store._alarms)).encode())
    return h.hexdigest()


def _live_table(store: KVStore) -> dict[bytes, tuple[int, ...]]:
    """The `live` table as it reads once the key index's pending rows are written (read
    without writing them: an entry must find pending rows as the apply path leaves them)."""
    live: dict[bytes, tuple[int, ...]] = {
        bytes(k): (c, m, v, lease, sub)
        for k, c, m, v, lease, sub in store._db().execute(
            "SELECT key, create_rev, mod_rev, version, lease, mod_sub FROM live"
        )
    }
    for key, entry in store._state.live_dirty.items():
        if entry is None:
            live.pop(key, None)
        else:
            live[key] = entry
    return live


def _mirror_matches_tables(store: KVStore) -> None:
    conn = store._db()
    live = _live_table(store)
    assert store._state.live == live
    assert store._state.keys_total == len(live)
    assert store._state.leases == dict(conn.execute("SELECT id, ttl FROM lease").fetchall())


def _outcome(result: ApplyResult) -> str:
    return repr(result.error) if result.error is not None else repr(result.response)


def _apply_everywhere(entries: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores = [
            KVStore.open(os.path.join(tmp, f"m{i}.db"), batch_interval=3600.0) for i in (1, 2)
        ]
        try:
            for index, data in enumerate(entries, start=1):
                before = [_state(s) for s in stores]
                results = [s.apply_batch([(index, data)]) for s in stores]
                after = [_state(s) for s in stores]
                assert [[_outcome(r) for r in rs] for rs in results[1:]] == [
                    [_outcome(r) for r in results[0]]
                ], f"members disagree on entry {index}"
                assert after[0] == after[1], f"members diverged at entry {index}"
                for rs, b, a in zip(results, before, after, strict=True):
                    if rs and rs[0].error is not None:
                        assert a == b, f"entry {index} failed ({rs[0].error}) but changed state"
                for s in stores:
                    _mirror_matches_tables(s)
                    assert s.applied_index() == index
        finally:
            for s in stores:
                s.close()


SETTINGS = settings(
    max_examples=int(os.environ.get("RAFTMON_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(st.lists(ENTRIES, min_size=1, max_size=10))
def test_any_sequence_of_entries_is_applied_alike_and_failures_change_nothing(
    entries: list[bytes],
) -> None:
    seed = [
        codec.encode_request(1, rq.LeaseGrantRequest(ttl=60, id=1)),
        codec.encode_request(2, rq.PutRequest(b"a", b"1")),
        codec.encode_request(3, rq.PutRequest(b"k", b"2", lease=1)),
    ]
    _apply_everywhere(seed + entries)


def test_the_reported_poison_entries_are_answered_and_the_store_lives() -> None:
    """Issue 18's reproductions, as committed entries (validation is bypassed here)."""
    limit = rq.TxnRequest(
        success=[
            rq.PutRequest(b"poison", b"x"),
            rq.RangeRequest(b"foo", limit=2**63 - 1),
        ]
    )
    nested = rq.TxnRequest(
        success=[rq.PutRequest(b"p2", b"x"), rq.TxnRequest(success=[limit.success[1]])]
    )
    bad_sort = rq.TxnRequest(
        success=[rq.PutRequest(b"p3", b"x"), rq.RangeRequest(b"a", b"z", sort_target=99)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = KVStore.open(os.path.join(tmp, "db"))
        try:
            entries = [
                codec.encode_request(i, req) for i, req in enumerate([limit, nested, bad_sort])
            ]
            results = store.apply_batch(list(enumerate([*entries, _deep_txn_entry(3000)], start=1)))
            assert [r.error for r in results[:3]] == [None, None, None]
            assert [r.response.succeeded for r in results[:3]] == [True, True, True]
            assert store.current_revision() == 4
            assert results[3].error is not None  # too deep to apply: answered, not raised
            assert store.applied_index() == 4
        finally:
            store.close()
