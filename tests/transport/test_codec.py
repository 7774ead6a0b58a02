"""The binary codec: every field survives a round trip, and bad bytes fail loudly."""

from __future__ import annotations

import random

import pytest

from node import raft
from node.transport.codec import (
    KEEPALIVE_FRAME,
    CodecError,
    FrameDecoder,
    decode,
    encode,
    encode_batch,
)

SEED = 20240611
U64 = 2**64 - 1


def random_message(rng: random.Random) -> raft.Message:
    """A message with every field drawn at random, including the extremes of each range."""

    def u64() -> int:
        return rng.choice([0, 1, U64, rng.getrandbits(64), rng.randrange(1000)])

    def blob(max_len: int) -> bytes:
        return rng.randbytes(rng.choice([0, 1, rng.randrange(max_len + 1)]))

    entries = [
        raft.Entry(u64(), u64(), rng.choice(list(raft.EntryType)), blob(600))
        for _ in range(rng.choice([0, 0, 1, rng.randrange(70)]))
    ]
    snapshot = None
    if rng.random() < 0.3:
        snapshot = raft.Snapshot(
            metadata=raft.SnapshotMetadata(
                index=u64(),
                term=u64(),
                conf_state=raft.ConfState(
                    voters=tuple(u64() for _ in range(rng.randrange(8))),
                    learners=tuple(u64() for _ in range(rng.randrange(3))),
                ),
            )
        )
    return raft.Message(
        type=rng.choice(list(raft.MessageType)),
        to=u64(),
        frm=u64(),
        term=u64(),
        log_term=u64(),
        index=u64(),
        entries=entries,
        commit=u64(),
        snapshot=snapshot,
        reject=rng.random() < 0.5,
        reject_hint=u64(),
        context=blob(64),
    )


@pytest.mark.parametrize("mtype", list(raft.MessageType))
def test_every_message_type_round_trips_with_all_fields(mtype: raft.MessageType) -> None:
    msg = raft.Message(
        type=mtype,
        to=0x8E9E05C52164694D,
        frm=0x91BC3C398FB3C146,
        term=7,
        log_term=6,
        index=41,
        entries=[raft.Entry(6, 42, raft.EntryType.EntryNormal, b"put k v"), raft.Entry(7, 43)],
        commit=40,
        snapshot=raft.Snapshot(
            raft.SnapshotMetadata(index=30, term=5, conf_state=raft.ConfState((1, 2, 3)))
        ),
        reject=True,
        reject_hint=39,
        context=b"read-index-ctx",
    )
    assert decode(encode(msg)) == msg


def test_heartbeat_defaults_round_trip_and_frame_is_small() -> None:
    msg = raft.Message(raft.MessageType.MsgHeartbeat, to=2, frm=1, term=3, commit=9)
    frame = encode(msg)
    assert decode(frame) == msg
    assert len(frame) <= 72  # fixed header: a heartbeat costs ~70 bytes on the wire


def test_randomized_messages_round_trip_through_a_chunked_stream() -> None:
    """Seeded property test: random messages, one stream, cut at random byte boundaries."""
    rng = random.Random(SEED)
    msgs = [random_message(rng) for _ in range(400)]
    for m in msgs:
        assert decode(encode(m)) == m, f"seed={SEED}"
    stream = encode_batch(msgs)
    decoder = FrameDecoder()
    out: list[raft.Message] = []
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 3, 7, rng.randrange(1, 5000)])
        out.extend(decoder.feed(stream[pos : pos + step]))
        pos += step
    assert out == msgs, f"seed={SEED}"
    assert decoder.buffered == 0


def test_snapshot_data_is_not_sent_inline() -> None:
    meta = raft.SnapshotMetadata(index=100, term=4, conf_state=raft.ConfState((1, 2), (3,)))
    msg = raft.Message(
        raft.MessageType.MsgSnap, to=2, frm=1, term=4, snapshot=raft.Snapshot(meta, b"x" * 10_000)
    )
    frame = encode(msg)
    assert len(frame) < 200
    got = decode(frame)
    assert got.snapshot == raft.Snapshot(meta, b"")


def test_decoder_skips_keepalives_and_handles_a_large_frame_in_small_chunks() -> None:
    big = raft.Message(
        raft.MessageType.MsgApp, to=2, frm=1, entries=[raft.Entry(1, 1, data=b"z" * 3_000_000)]
    )
    small = raft.Message(raft.MessageType.MsgHeartbeat, to=2, frm=1)
    stream = KEEPALIVE_FRAME + encode(big) + KEEPALIVE_FRAME + encode(small)
    decoder = FrameDecoder()
    out: list[raft.Message] = []
    for at in range(0, len(stream), 65536):
        out.extend(decoder.feed(stream[at : at + 65536]))
    assert out == [big, small]


def test_oversized_frame_is_rejected_before_buffering() -> None:
    decoder = FrameDecoder(max_frame=1024)
    frame = encode(
        raft.Message(raft.MessageType.MsgApp, entries=[raft.Entry(1, 1, data=b"a" * 2048)])
    )
    with pytest.raises(CodecError, match="exceeds"):
        decoder.feed(frame[:10])


@pytest.mark.parametrize(
    ("garbage", "match"),
    [
        (b"\x01\x00", "shorter"),
        (b"\x00\x00\x00\x00", "keep-alive"),
        (b"\x05\x00\x00\x00abcde", "truncated"),
    ],
)
def test_garbage_raises_codec_error(garbage: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode(garbage)


def test_unknown_message_type_and_trailing_bytes_are_errors() -> None:
    frame = bytearray(encode(raft.Message(raft.MessageType.MsgHeartbeat)))
    frame[4] = 200  # type byte
    with pytest.raises(CodecError, match="unknown"):
        decode(bytes(frame))
    padded = bytearray(encode(raft.Message(raft.MessageType.MsgHeartbeat)) + b"\x00")
    padded[0] += 1  # claim the extra byte as part of the body
    with pytest.raises(CodecError, match="mismatch"):
        decode(bytes(padded))


@pytest.mark.parametrize("field", ["term", "to", "commit"])
def test_out_of_range_values_are_refused_not_truncated(field: str) -> None:
    msg = raft.Message(raft.MessageType.MsgApp)
    setattr(msg, field, -1)
    with pytest.raises(CodecError):
        encode(msg)
    setattr(msg, field, 2**64)
    with pytest.raises(CodecError):
        encode(msg)
