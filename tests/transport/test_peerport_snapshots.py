"""Snapshot uploads read on the peer port's plain asyncio (node.transport.peerport): a
restarted follower takes the leader's image before its aiohttp is imported, and every
upload the aiohttp handler refuses or fails is refused or failed here the same way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import crc32c
import pytest

from node.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from node.transport import httphead, wire
from node.transport.codec import encode
from node.transport.peerport import PeerPort
from tests.transport.harness import Cluster, Member, eventually

META = SnapshotMetadata(index=4321, term=3, conf_state=ConfState(voters=(1, 2)))


def msg_snap(frm: int, to: int = 2) -> Message:
    return Message(MessageType.MsgSnap, to=to, frm=frm, term=3, snapshot=Snapshot(META))


def upload_body(msg: Message, image: bytes) -> bytes:
    """What an older `send_snapshot` sent: the MsgSnap frame, the image, its CRC-32 (IEEE),
    the kind unnamed."""
    return encode(msg) + image + struct.pack("<I", zlib.crc32(image))


def upload_head(
    cluster: Cluster, image_size: int, fields: dict[str, str] | None = None, frm: int = 1
) -> bytes:
    headers = {
        **wire.stream_headers(frm, 2, cluster.cluster_id),
        wire.HDR_SNAPSHOT_SIZE: str(image_size),
        **(fields or {}),
    }
    return httphead.request("POST", wire.SNAPSHOT_PATH, "x", headers)


@pytest.fixture
def follower_without_aiohttp(
    make_cluster: Callable[..., Cluster], servers: list[asyncio.AbstractServer]
) -> Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]]:
    """Member 2 of two listens on its peer port, transport started, aiohttp not served
    (a restarted follower's first moments: serve.py); member 1 is not started."""

    async def start() -> tuple[Cluster, Member, PeerPort]:
        cluster = make_cluster(2)
        member = cluster.build(2)
        port = PeerPort(member.transport)
        server = await asyncio.get_running_loop().create_server(
            port.protocol, "127.0.0.1", member.port, reuse_address=True
        )
        servers.append(server)
        await member.transport.start()
        cluster.members[2] = member
        return cluster, member, port

    return start


async def exchange(member: Member, request: bytes) -> bytes:
    """Send `request`, return the whole answer (read to the connection's end)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", member.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def files_in(cluster: Cluster) -> list[str]:
    snap_dir = Path(cluster.snapshot_root) / "member-2"
    return os.listdir(snap_dir) if snap_dir.exists() else []


async def test_an_upload_before_aiohttp_serves_is_received_delivered_and_answered_204(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
) -> None:
    cluster, b, port = await follower_without_aiohttp()
    image = random.Random(3).randbytes(700_000)  # past the port's buffer, paused and resumed
    body = upload_body(msg_snap(1), image)
    head = upload_head(cluster, len(image), {"Content-Length": str(len(body))})
    answer = await exchange(b, head + body)
    assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"Content-Length" not in answer  # a 204 has no body to measure (RFC 9110)
    assert not port.http_ready
    assert len(b.rec.snapshots) == 1
    got, _, content = b.rec.snapshots[0]
    assert content == image
    assert got.snapshot == Snapshot(META)
    assert (got.frm, got.to) == (1, 2)
    assert files_in(cluster) == [f"{META.index:016x}.snap.db"]
    stats = b.transport.stats()[1]
    assert (stats.snapshot_receive_success, stats.snapshot_receive_inflight) == (1, 0)
    assert stats.received_bytes == len(body)


async def test_a_member_sends_its_snapshot_to_a_peer_port_without_aiohttp(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
    tmp_path: Path,
) -> None:
    cluster, b, port = await follower_without_aiohttp()
    a = await cluster.start(1)
    image = random.Random(4).randbytes(2 * 1024 * 1024 + 3)
    (tmp_path / "db").write_bytes(image)
    a.transport.send_snapshot(msg_snap(1), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, False)], "snapshot success status")
    assert b.rec.snapshots[0][2] == image
    assert not port.http_ready


@pytest.mark.parametrize(
    ("msg", "frm", "status", "why"),
    [
        (msg_snap(3), 1, b"400", b"message from 3 on a stream from 1"),  # forged MsgSnap
        (msg_snap(1), 9, b"404", b"error sender not found"),  # refused before the body
    ],
)
async def test_a_refused_upload_is_answered_and_writes_nothing(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
    msg: Message,
    frm: int,
    status: bytes,
    why: bytes,
) -> None:
    cluster, b, _ = await follower_without_aiohttp()
    image = b"i" * 1_500_000  # still arriving when the answer is written
    body = upload_body(msg, image)
    head = upload_head(cluster, len(image), {"Content-Length": str(len(body))}, frm=frm)
    answer = await exchange(b, head + body)
    assert answer.split(b" ")[1] == status
    assert why in answer
    assert b.rec.snapshots == []
    assert files_in(cluster) == []


@pytest.mark.parametrize(("kind", "checksum"), [("crc32c", crc32c.crc32c), ("crc32", zlib.crc32)])
async def test_an_upload_summed_by_a_kind_it_names_is_received(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
    kind: str,
    checksum: Callable[[bytes], int],
) -> None:
    cluster, b, _ = await follower_without_aiohttp()
    image = random.Random(5).randbytes(1_300_000)
    body = encode(msg_snap(1)) + image + struct.pack("<I", checksum(image))
    fields = {"Content-Length": str(len(body)), wire.HDR_SNAPSHOT_CHECKSUM: kind}
    answer = await exchange(b, upload_head(cluster, len(image), fields) + body)
    assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b.rec.snapshots[0][2] == image


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("crc32c", b"checksum mismatch"),  # the trailer is CRC-32 (IEEE), the header says C
        ("sha-1", b"unknown image checksum kind 'sha-1' (this member knows crc32, crc32c)"),
    ],
)
async def test_an_upload_whose_checksum_does_not_hold_is_refused_and_leaves_no_file(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
    kind: str,
    why: bytes,
) -> None:
    cluster, b, _ = await follower_without_aiohttp()
    image = b"w" * 1_300_000
    body = upload_body(msg_snap(1), image)
    fields = {"Content-Length": str(len(body)), wire.HDR_SNAPSHOT_CHECKSUM: kind}
    answer = await exchange(b, upload_head(cluster, len(image), fields) + body)
    assert answer.split(b" ")[1] == b"400"
    assert why in answer
    assert b.rec.snapshots == []
    assert files_in(cluster) == []
    assert b.transport.stats()[1].snapshot_receive_failures == 1


async def test_a_truncated_upload_fails_cleanly_and_leaves_no_file(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
) -> None:
    cluster, b, _ = await follower_without_aiohttp()
    image = b"t" * (3 * 1024 * 1024)
    body = upload_body(msg_snap(1), image)
    head = upload_head(cluster, len(image), {"Content-Length": str(len(body))})
    _, writer = await asyncio.open_connection("127.0.0.1", b.port)
    writer.write(head + body[: len(body) // 2])  # past one chunk: a part file was written
    await writer.drain()
    await eventually(lambda: bool(files_in(cluster)), "part file")
    writer.close()
    await eventually(
        lambda: b.transport.stats()[1].snapshot_receive_failures == 1, "the failure counted"
    )
    assert b.rec.snapshots == []
    assert b.transport.stats()[1].snapshot_receive_inflight == 0
    assert files_in(cluster) == []


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"Content-Length": "12x"}, b"400"),
        ({"Content-Length": "-5"}, b"400"),
        ({}, b"411"),
    ],
)
async def test_an_upload_without_a_good_content_length_is_refused(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
    fields: dict[str, str],
    status: bytes,
) -> None:
    cluster, b, _ = await follower_without_aiohttp()
    answer = await exchange(b, upload_head(cluster, 3, fields) + b"abc")
    assert answer.split(b" ")[1] == status
    assert b.rec.snapshots == []
    assert b.transport.stats()[1].snapshot_receive_failures == 0  # never admitted


async def test_a_chunked_upload_is_left_to_aiohttp(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2)
    b = cluster.members[2]
    image = b"chunked image"
    body = upload_body(msg_snap(1), image)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    fields = {"Transfer-Encoding": "chunked", "Connection": "close"}  # aiohttp keeps alive
    answer = await exchange(b, upload_head(cluster, len(image), fields) + chunked)
    assert answer.startswith(b"HTTP/1.1 204")
    assert b.rec.snapshots[0][2] == image


async def test_an_upload_in_progress_when_the_member_stops_is_abandoned_without_a_file(
    follower_without_aiohttp: Callable[[], Awaitable[tuple[Cluster, Member, PeerPort]]],
) -> None:
    cluster, b, _ = await follower_without_aiohttp()
    image = b"s" * (3 * 1024 * 1024)
    body = upload_body(msg_snap(1), image)
    head = upload_head(cluster, len(image), {"Content-Length": str(len(body))})
    reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
    try:
        writer.write(head + body[: len(body) // 2])
        await writer.drain()
        await eventually(lambda: bool(files_in(cluster)), "part file")
        await b.transport.stop()
        # Closed without an answer (reset: the rest of the body is still unread there).
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()
    assert b.rec.snapshots == []
    assert files_in(cluster) == []


def test_an_upload_on_the_peer_port_does_not_import_aiohttp(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.transport.upload_without_aiohttp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": "HTTP/1.1 204 No Content", "delivered": 1, "aiohttp": False}
