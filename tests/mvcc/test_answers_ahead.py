"""A batch answered before its apply (`KVStore.answers_ahead`) is applied to exactly those answers.

The Ready loop answers a batch of plain puts from its committed entries, then applies
it (node/server/apply.py). Hypothesis draws batches of arbitrary entries (the same
requests as test_apply_total.py, plus many plain puts) over a store with a lease and
keys: whenever `answers_ahead` answers, `apply_batch` must give the same results, and
whenever the batch holds anything but plain puts it must not answer.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from node.mvcc import codec
from node.mvcc import requests as rq
from node.mvcc.store import ApplyResult, KVStore
from tests.mvcc.test_apply_total import ENTRIES, KEYS, SETTINGS

PLAIN_PUTS = st.builds(rq.PutRequest, KEYS, st.binary(max_size=8)).map(
    lambda req: codec.encode_request(11, req)
)
BATCHES = st.lists(
    st.lists(st.one_of(PLAIN_PUTS, PLAIN_PUTS, ENTRIES, st.just(b"")), min_size=1, max_size=6),
    min_size=1,
    max_size=6,
)


def _answer(result: ApplyResult) -> tuple[int, int, int | None, str]:
    revision = result.response.revision if result.error is None else None
    return result.index, result.request_id, revision, repr(result.error)


def _plain_puts_only(batch: list[bytes]) -> bool:
    for data in batch:
        if not data:
            continue
        try:
            _, req = codec.decode_request(data)
        except Exception:
            return False
        if type(req) is not rq.PutRequest:
            return False
        if req.lease or req.prev_kv or req.ignore_value or req.ignore_lease:
            return False
    return True


@SETTINGS
@given(BATCHES)
def test_answers_ahead_are_the_applied_results(batches: list[list[bytes]]) -> None:
    seed = [
        codec.encode_request(1, rq.LeaseGrantRequest(ttl=60, id=1)),
        codec.encode_request(2, rq.PutRequest(b"a", b"1")),
        codec.encode_request(3, rq.PutRequest(b"k", b"2", lease=1)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = KVStore.open(os.path.join(tmp, "db"), batch_interval=3600.0)
        try:
            store.apply_batch(list(enumerate(seed, start=1)))
            index = len(seed)
            for batch in batches:
                entries = [(index + i, data) for i, data in enumerate(batch, start=1)]
                index += len(batch)
                ahead = store.answers_ahead(entries)
                applied = store.apply_batch(entries)
                if ahead is None:
                    assert not _plain_puts_only(batch) or store.alarms()
                    continue
                assert _plain_puts_only(batch)
                assert [_answer(r) for r in ahead] == [_answer(r) for r in applied]
        finally:
            store.close()


def test_no_answers_ahead_while_an_alarm_is_raised(store: KVStore) -> None:
    """A NOSPACE alarm refuses puts at apply: nothing may be answered before it."""
    alarm = rq.AlarmRequest(action=rq.AlarmAction.ACTIVATE, member_id=1, alarm=rq.AlarmType.NOSPACE)
    store.apply_batch([(1, codec.encode_request(1, alarm))])
    put = [(2, codec.encode_request(2, rq.PutRequest(b"k", b"v")))]
    assert store.answers_ahead(put) is None
    assert store.apply_batch(put)[0].error is not None


def test_entries_already_applied_and_no_ops_are_not_answered(store: KVStore) -> None:
    store.apply_batch([(1, codec.encode_request(1, rq.PutRequest(b"a", b"1")))])
    batch = [
        (1, codec.encode_request(1, rq.PutRequest(b"a", b"1"))),  # applied already
        (2, b""),  # a leader's no-op entry
        (3, codec.encode_request(3, rq.PutRequest(b"b", b"2"))),
    ]
    ahead = store.answers_ahead(batch)
    assert ahead is not None
    assert [_answer(r) for r in ahead] == [(3, 3, 3, "None")]
    assert [_answer(r) for r in store.apply_batch(batch)] == [(3, 3, 3, "None")]
