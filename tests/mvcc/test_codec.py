"""The Raft entry codec: every replicated request survives a round trip; garbage is refused."""

from __future__ import annotations

from typing import Any

import pytest

from node.errors import ErrUndecodable
from node.mvcc import codec
from node.mvcc import requests as rq

SAMPLES: list[Any] = [
    rq.PutRequest(b"k", b"v" * 256, lease=7, prev_kv=True),
    rq.PutRequest(b"\x00\xff", b"", ignore_value=True, ignore_lease=True),
    rq.RangeRequest(b"a", b"\0", limit=5, revision=9, sort_order=2, sort_target=4, keys_only=True),
    rq.DeleteRangeRequest(b"a", b"b", prev_kv=True),
    rq.TxnRequest(
        compare=[
            rq.Compare(b"k", rq.CompareTarget.MOD, rq.CompareResult.LESS, mod_revision=-1),
            rq.Compare(b"k", rq.CompareTarget.VALUE, value=b"x", range_end=b"l"),
        ],
        success=[
            rq.PutRequest(b"a", b"1"),
            rq.TxnRequest(success=[rq.RangeRequest(b"z")], failure=[rq.DeleteRangeRequest(b"q")]),
        ],
        failure=[rq.RangeRequest(b"k", count_only=True)],
    ),
    rq.CompactionRequest(123, physical=True),
    rq.LeaseGrantRequest(ttl=30, id=7587),
    rq.LeaseRevokeRequest(id=2**62),
    rq.AlarmRequest(rq.AlarmAction.ACTIVATE, 2**64 - 1, rq.AlarmType.NOSPACE),
    rq.LeaseKeepAliveRequest(5),
    rq.LeaseTimeToLiveRequest(5, keys=True),
    rq.LeaseLeasesRequest(),
]


@pytest.mark.parametrize("req", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip(req: Any) -> None:
    data = codec.encode_request(2**64 - 2, req)
    assert codec.decode_request(data) == (2**64 - 2, req)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02" + bytes(9), b"\x01" + bytes(8) + b"\xee", b"\x01" + bytes(8) + b"\x01\xff"],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ErrUndecodable):
        codec.decode_request(data)


def test_trailing_bytes_are_refused() -> None:
    data = codec.encode_request(1, rq.LeaseRevokeRequest(3))
    with pytest.raises(ErrUndecodable):
        codec.decode_request(data + b"x")


def test_non_replicated_values_are_refused() -> None:
    with pytest.raises(TypeError):
        codec.encode_request(1, rq.WatchCreateRequest(b"k"))
