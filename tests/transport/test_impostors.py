"""A process that speaks the wire protocol but is not the member it claims to be.

A raw aiohttp client plays the impostor: it knows the cluster id and the member ids (both
are public) and writes frames straight to the upgraded socket. What it sends that no
member sends is dropped and counted; it cannot displace a member's live stream; it is
refused (and counted) when it is not a member at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from node.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from node.transport import wire
from node.transport.codec import KEEPALIVE_FRAME, encode
from node.transport.snapshot import SnapshotError, send_snapshot
from node.transport.stats import REFUSED_CLUSTER, REFUSED_IN_USE, REFUSED_SENDER
from tests.transport.harness import Cluster, Member, eventually

MT = MessageType


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def dial(
    session: aiohttp.ClientSession, b: Member, cluster: Cluster, claims: int, **headers: str
) -> aiohttp.ClientResponse:
    """A stream to `b` claiming to come from member `claims` (not yet checked for 101)."""
    h = wire.upgrade_headers(wire.stream_headers(claims, b.id, cluster.cluster_id))
    h.update(headers)
    return await session.get(b.url + wire.STREAM_PATH, headers=h)


@dataclass
class LoneMember:
    """Member 2 of a 3-member cluster serving alone: whoever reaches it is an impostor."""

    cluster: Cluster
    b: Member
    session: aiohttp.ClientSession

    async def dial(self, claims: int, **headers: str) -> aiohttp.ClientResponse:
        return await dial(self.session, self.b, self.cluster, claims, **headers)


@pytest.fixture
async def lone_b(
    make_cluster: Callable[..., Cluster],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> LoneMember:
    caplog.set_level(logging.WARNING)  # what the member says about each impostor
    cluster = make_cluster(3)
    return LoneMember(cluster, await cluster.start(2), session)


def socket_of(resp: aiohttp.ClientResponse) -> asyncio.WriteTransport:
    sock = resp.connection.transport if resp.connection else None
    assert sock is not None
    return sock


async def test_frames_no_member_sends_are_dropped_counted_and_the_stream_lives_on(
    lone_b: LoneMember, caplog: pytest.LogCaptureFixture
) -> None:
    b = lone_b.b
    resp = await lone_b.dial(claims=1)
    assert resp.status == 101
    forged = [
        Message(MT.MsgHeartbeat, to=2, frm=1, term=2**64 - 1),  # finding 2 of issue 18
        Message(MT.MsgApp, to=2, frm=3, term=1),  # posing as another member
        Message(MT.MsgVote, to=2, frm=99, term=2),  # a non-member's vote request
        Message(MT.MsgHeartbeat, to=3, frm=1, term=1),  # addressed to someone else
        Message(MT.MsgHup, to=2, frm=1, term=1),  # local-only type
        Message(MT.MsgApp, to=2, frm=1, term=1, commit=2**63),
    ]
    honest = Message(MT.MsgHeartbeat, to=2, frm=1, term=1, commit=4)
    socket_of(resp).write(b"".join(encode(m) for m in [*forged, honest]))
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "the honest heartbeat")
    assert [(m.type, m.commit) for m in b.rec.messages] == [(MT.MsgHeartbeat, 4)]
    stats = b.transport.stats()[1]
    assert stats.messages_refused == len(forged)
    assert stats.receive_failures == len(forged)  # etcd_network_peer_received_failures_total
    dropped = [r for r in caplog.records if "dropped peer message" in r.getMessage()]
    assert len(dropped) == 1, "one WARNING per stream, the rest at DEBUG"
    assert "remote-peer-id=1 type=MsgHeartbeat term=18446744073709551615" in dropped[0].getMessage()
    socket_of(resp).write(encode(Message(MT.MsgHeartbeat, to=2, frm=1, term=1, commit=5)))
    await b.rec.wait(lambda: len(b.rec.messages) == 2, "the stream still delivers")
    resp.close()


async def test_a_non_member_and_a_wrong_cluster_are_refused_and_counted(
    lone_b: LoneMember, caplog: pytest.LogCaptureFixture
) -> None:
    b = lone_b.b
    async with await lone_b.dial(claims=0x99) as resp:
        assert resp.status == 404
        assert "error sender not found: 99 is not a member" in await resp.text()
    wrong = {wire.HDR_CLUSTER_ID: wire.id_hex(lone_b.cluster.cluster_id + 1)}
    async with await lone_b.dial(claims=1, **wrong) as resp:
        assert resp.status == 412
        assert "cluster ID mismatch" in await resp.text()
    assert b.rec.refused == [REFUSED_SENDER, REFUSED_CLUSTER]
    lines = [r.getMessage() for r in caplog.records if r.name == "node.transport.receiver"]
    assert any("remote-peer-id=99 remote-addr=127.0.0.1 reason=unknown_sender" in x for x in lines)
    assert b.rec.messages == []


async def test_a_second_stream_cannot_displace_a_members_live_stream(
    connected_cluster: Callable[..., Awaitable[Cluster]], session: aiohttp.ClientSession
) -> None:
    cluster = await connected_cluster(2)
    a, b = cluster.members[1], cluster.members[2]
    async with await dial(session, b, cluster, claims=1) as resp:
        assert resp.status == 409
        assert "member 1 already has a live stream" in await resp.text()
    assert b.rec.refused == [REFUSED_IN_USE]
    # The real stream was left alone: member 1's messages still arrive on it.
    a.transport.send([Message(MT.MsgHeartbeat, to=2, frm=1, term=1, commit=11)])
    await b.rec.wait(lambda: any(m.commit == 11 for m in b.rec.messages), "member 1's message")
    assert a.transport.stats()[2].disconnects == 0


async def test_a_stream_silent_past_the_window_is_replaced_by_a_new_one(
    make_cluster: Callable[..., Cluster], session: aiohttp.ClientSession
) -> None:
    """A restarted or partitioned member redials: its old stream went silent, so it yields."""
    cluster = make_cluster(2)  # heartbeat 0.1 s: takeover window 10 x 0.1 s
    b = await cluster.start(2)
    first = await dial(session, b, cluster, claims=1)
    assert first.status == 101
    socket_of(first).write(KEEPALIVE_FRAME)
    second = await dial(session, b, cluster, claims=1)
    assert second.status == 409  # the first one spoke just now
    await asyncio.sleep(1.3)  # the first stream stays silent past the 1 s window
    third = await dial(session, b, cluster, claims=1)
    assert third.status == 101
    protocol = first.connection.protocol if first.connection else None
    await eventually(lambda: protocol is None or not protocol.is_connected(), "old one closed")
    socket_of(third).write(encode(Message(MT.MsgHeartbeat, to=2, frm=1, term=1, commit=3)))
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "the new stream delivers")
    assert b.transport.stats()[1].receive_failures == 0  # replaced, not failed
    for resp in (first, second, third):
        resp.close()


def snapshot_upload(frm: int, term: int = 7) -> Message:
    meta = SnapshotMetadata(index=50, term=term, conf_state=ConfState(voters=(1, 2, 3)))
    return Message(MT.MsgSnap, to=2, frm=frm, term=term, snapshot=Snapshot(meta))


@pytest.mark.parametrize(
    ("msg", "why"),
    [
        (snapshot_upload(frm=3), "message from 3 on a stream from 1"),
        (snapshot_upload(frm=1, term=2**64 - 1), "term or index beyond"),
    ],
)
async def test_a_forged_snapshot_upload_is_refused_before_its_image_is_written(
    lone_b: LoneMember, tmp_path: Path, msg: Message, why: str
) -> None:
    cluster, b = lone_b.cluster, lone_b.b
    image = b"forged image"
    source = tmp_path / "image"
    source.write_bytes(image)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SnapshotError, match=why):
            await send_snapshot(
                lambda: session,
                b.url,
                wire.stream_headers(1, 2, cluster.cluster_id),
                msg,
                str(source),
                chunk_size=1024,
                dial_timeout=2.0,
                response_timeout=5.0,
            )
    assert b.rec.snapshots == []
    stats = b.transport.stats()[1]
    assert (stats.messages_refused, stats.receive_failures) == (1, 1)
    snap_dir = Path(cluster.snapshot_root) / "member-2"
    assert not snap_dir.exists() or os.listdir(snap_dir) == []


async def test_a_snapshot_claiming_a_member_from_another_address_than_its_stream_is_refused(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    """The member's live stream comes from 127.0.0.1; the impostor's upload from 127.0.0.2."""
    cluster = await connected_cluster(2)
    b = cluster.members[2]
    body = encode(snapshot_upload(frm=1)) + b"img" + struct.pack("<I", zlib.crc32(b"img"))
    headers = {**wire.stream_headers(1, 2, cluster.cluster_id), wire.HDR_SNAPSHOT_SIZE: "3"}
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(b.url + wire.SNAPSHOT_PATH, data=body, headers=headers) as resp,
    ):
        assert resp.status == 409
        assert "member 1 already has a live stream" in await resp.text()
    assert b.rec.refused == [REFUSED_IN_USE]
    assert b.rec.snapshots == []
