"""What no honest member sends is dropped before the core: ids, types and value bounds."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.raft.messages import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from node.transport.codec import CodecError, FrameDecoder, decode, encode
from node.transport.screen import WIRE_VALUE_LIMIT, out_of_range, refusal

MT = MessageType
LEADER, LOCAL = 1, 2
TOP = WIRE_VALUE_LIMIT - 1  # the largest value a received message may carry


def heartbeat(**fields: int) -> Message:
    msg = Message(MT.MsgHeartbeat, to=LOCAL, frm=LEADER, term=5)
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def test_an_ordinary_message_passes() -> None:
    msg = Message(
        MT.MsgApp,
        to=LOCAL,
        frm=LEADER,
        term=5,
        log_term=5,
        index=10,
        commit=9,
        entries=[Entry(5, 11, data=b"x")],
    )
    assert refusal(msg, LEADER, LOCAL) is None


@pytest.mark.parametrize("field", ["term", "log_term", "index", "commit", "reject_hint"])
@pytest.mark.parametrize("value", [WIRE_VALUE_LIMIT, 2**63, 2**64 - 1])
def test_a_header_value_at_or_beyond_the_limit_is_refused(field: str, value: int) -> None:
    msg = heartbeat(**{field: value})
    assert out_of_range(msg)
    why = refusal(msg, LEADER, LOCAL)
    assert "beyond" in str(why)


@pytest.mark.parametrize("field", ["term", "log_term", "index", "commit", "reject_hint"])
def test_the_largest_accepted_value_passes(field: str) -> None:
    assert refusal(heartbeat(**{field: TOP}), LEADER, LOCAL) is None


def test_entry_and_snapshot_values_are_bounded_too() -> None:
    app = Message(MT.MsgApp, to=LOCAL, frm=LEADER, term=5, entries=[Entry(5, 2**64 - 1)])
    assert refusal(app, LEADER, LOCAL) is not None
    app.entries = [Entry(2**62, 3)]
    assert refusal(app, LEADER, LOCAL) is not None
    snap = Message(
        MT.MsgSnap,
        to=LOCAL,
        frm=LEADER,
        term=5,
        snapshot=Snapshot(SnapshotMetadata(index=2**63, term=5, conf_state=ConfState((1, 2, 3)))),
    )
    assert refusal(snap, LEADER, LOCAL, snapshot=True) is not None


def test_every_reply_to_an_accepted_message_is_encodable() -> None:
    """The member must always be able to answer: term+1 (a PreVote campaign), index+1."""
    msg = heartbeat(term=TOP, index=TOP, commit=TOP, log_term=TOP)
    assert refusal(msg, LEADER, LOCAL) is None
    reply = Message(
        MT.MsgPreVote, to=LEADER, frm=LOCAL, term=TOP + 1, index=TOP + 1, log_term=TOP + 1
    )
    assert decode(encode(reply)).term == TOP + 1
    # ... and storable as a signed 64-bit SQLite INTEGER, with room to spare.
    assert 2 * WIRE_VALUE_LIMIT <= 2**63


def test_a_term_of_2_64_minus_1_decodes_but_is_refused() -> None:
    """Finding 2 of issue 18: the frame is valid, the value is what no member sends."""
    msg = decode(encode(heartbeat(term=2**64 - 1)))
    assert msg.term == 2**64 - 1
    assert refusal(msg, LEADER, LOCAL) is not None


def test_a_message_must_come_from_the_streams_member_and_be_for_us() -> None:
    assert "on a stream from" in str(refusal(heartbeat(), sender=3, local=LOCAL))
    forged = heartbeat()
    forged.to = 3
    assert "delivered to" in str(refusal(forged, LEADER, LOCAL))


def test_only_forwarded_proposals_and_reads_may_carry_no_term() -> None:
    """Term 0 means "local" to the core: a MsgApp without a term would bypass every term rule."""
    for mtype in (MT.MsgApp, MT.MsgHeartbeat, MT.MsgVote, MT.MsgAppResp, MT.MsgTimeoutNow):
        msg = Message(mtype, to=LOCAL, frm=LEADER)
        assert "without a term" in str(refusal(msg, LEADER, LOCAL)), mtype
    for mtype in (MT.MsgProp, MT.MsgReadIndex):
        assert refusal(Message(mtype, to=LOCAL, frm=LEADER), LEADER, LOCAL) is None


@pytest.mark.parametrize(
    "mtype",
    [MT.MsgHup, MT.MsgBeat, MT.MsgUnreachable, MT.MsgSnapStatus, MT.MsgCheckQuorum, MT.MsgSnap],
)
def test_local_types_and_msgsnap_never_arrive_on_a_stream(mtype: MessageType) -> None:
    msg = Message(mtype, to=LOCAL, frm=LEADER, term=5)
    assert "never sent on a stream" in str(refusal(msg, LEADER, LOCAL))


def test_only_a_msgsnap_is_accepted_as_a_snapshot_upload() -> None:
    snap = Message(MT.MsgSnap, to=LOCAL, frm=LEADER, term=5, snapshot=Snapshot())
    assert refusal(snap, LEADER, LOCAL, snapshot=True) is None
    assert refusal(heartbeat(), LEADER, LOCAL, snapshot=True) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_raise_only_codec_errors(chunks: list[bytes]) -> None:
    """Nothing a peer writes can raise anything but CodecError out of the decoder."""
    decoder = FrameDecoder(max_frame=4096)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    mtype=st.integers(0, 255),
    flags=st.integers(0, 255),
    counts=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    tail=st.binary(max_size=120),
)
def test_a_valid_header_with_hostile_counts_raises_only_codec_errors(
    mtype: int, flags: int, counts: tuple[int, int], tail: bytes
) -> None:
    header = struct.pack("<BBQQQQQQQII", mtype, flags, 2, 1, 1, 0, 0, 0, 0, *counts)
    body = header + tail
    try:
        FrameDecoder().feed(struct.pack("<I", len(body)) + body)
    except CodecError:
        pass
