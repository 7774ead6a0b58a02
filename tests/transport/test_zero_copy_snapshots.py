"""Snapshot images on plain TCP go socket -> file without Python-level copies: the sender
by `sendfile` (node.transport.sendfile), the peer port's receiver in one worker thread
(node.transport.sockbody). The failures they meet are reported as the aiohttp path's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crc32c
import pytest

from node.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from node.transport import TransportOptions, httphead, sendfile, snapshot, sockbody, wire
from node.transport.codec import encode
from tests.transport.harness import Cluster, eventually

META = SnapshotMetadata(index=777, term=5, conf_state=ConfState(voters=(1, 2)))


def msg_snap(frm: int = 1, to: int = 2) -> Message:
    return Message(MessageType.MsgSnap, to=to, frm=frm, term=5, snapshot=Snapshot(META))


def write_image(path: Path, size: int) -> bytes:
    data = random.Random(size).randbytes(size)
    path.write_bytes(data)
    return data


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Wrap `owner.name` (async) so that each call appends to the returned list."""
    calls: list[int] = []
    real = getattr(owner, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def no_aiohttp() -> Any:
    raise AssertionError("the upload fell back to aiohttp's client")


async def test_an_image_file_goes_by_sendfile_and_is_read_in_a_thread_byte_identical(
    make_cluster: Callable[..., Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_calls(monkeypatch, sendfile, "upload")
    copied = count_calls(monkeypatch, sockbody.SocketBody, "copy_to")
    # Chunks smaller than the image and an odd size: many reads, a short last one.
    cluster = make_cluster(2, options=TransportOptions(snapshot_chunk_size=64 * 1024))
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    image = write_image(tmp_path / "db", 3 * 1024 * 1024 + 5)
    a.transport.send_snapshot(msg_snap(), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, False)], "snapshot success status")
    assert (len(sent), len(copied)) == (1, 1)
    assert b.rec.snapshots[0][2] == image
    out, inn = a.transport.stats()[2], b.transport.stats()[1]
    assert out.snapshot_send_success == inn.snapshot_receive_success == 1
    assert out.sent_bytes == inn.received_bytes > len(image)


async def test_an_empty_image_is_sent_and_received(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster(2)
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    (tmp_path / "db").write_bytes(b"")
    a.transport.send_snapshot(msg_snap(), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, False)], "snapshot success status")
    assert b.rec.snapshots[0][2] == b""


async def test_a_receiver_gone_mid_transfer_fails_the_send_and_counts_it(
    make_cluster: Callable[..., Cluster],
    tmp_path: Path,
    servers: list[asyncio.AbstractServer],
) -> None:
    cluster = make_cluster(2)
    gone = cluster.build(2)  # its address, served by a receiver that hangs up mid-body
    got: list[bytes] = []  # each connection's first bytes (streams dial here too)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.read(256 * 1024))
        writer.transport.abort()

    servers.append(await asyncio.start_server(hang_up, "127.0.0.1", gone.port))
    a = await cluster.start(1)
    write_image(tmp_path / "db", 8 * 1024 * 1024)
    a.transport.send_snapshot(msg_snap(), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, True)], "failed snapshot status")
    await a.rec.wait(lambda: 2 in a.rec.unreachable, "unreachable after failed snapshot")
    stats = a.transport.stats()[2]
    assert (stats.snapshot_send_failures, stats.snapshot_send_success) == (1, 0)
    assert stats.snapshot_send_inflight == 0
    assert any(first.startswith(b"POST " + wire.SNAPSHOT_PATH.encode()) for first in got)


async def test_a_refusal_answered_before_the_body_is_read_reaches_the_sender(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster(2)
    b = await cluster.start(2)
    write_image(tmp_path / "db", 2 * 1024 * 1024)
    with pytest.raises(snapshot.SnapshotError, match="HTTP 4"):
        await snapshot.send_snapshot(
            no_aiohttp,
            b.url,
            wire.stream_headers(1, 2, cluster.cluster_id + 1),  # another cluster's
            msg_snap(),
            str(tmp_path / "db"),
            chunk_size=1024,
            dial_timeout=2.0,
            response_timeout=5.0,
        )
    assert b.rec.snapshots == []


async def test_a_tls_peer_or_an_in_memory_image_uses_aiohttps_client(tmp_path: Path) -> None:
    write_image(tmp_path / "db", 1024)
    sources: list[str | bytes] = [str(tmp_path / "db"), b"image"]
    for url, source in zip(("https://127.0.0.1:1", "http://127.0.0.1:1"), sources, strict=True):
        with pytest.raises(AssertionError, match="aiohttp"):
            await snapshot.send_snapshot(
                no_aiohttp,
                url,
                {},
                msg_snap(),
                source,
                chunk_size=1024,
                dial_timeout=2.0,
                response_timeout=5.0,
            )


def test_the_crc_of_an_image_comes_from_its_first_size_bytes(tmp_path: Path) -> None:
    image = write_image(tmp_path / "db", 100_000)
    assert sendfile.image_crc(str(tmp_path / "db"), 100_000) == crc32c.crc32c(image)
    assert sendfile.image_crc(str(tmp_path / "db"), 10) == crc32c.crc32c(image[:10])
    assert sendfile.image_crc(str(tmp_path / "db"), 0) == 0
    with pytest.raises(sendfile.UploadFailed, match="shrank"):
        sendfile.image_crc(str(tmp_path / "db"), 100_001)


async def test_a_sender_that_stops_mid_body_fails_the_upload_and_leaves_no_file(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    b = await cluster.start(2)
    frame = encode(msg_snap())
    size = 1024 * 1024
    head = httphead.request(
        "POST",
        wire.SNAPSHOT_PATH,
        "x",
        {
            **wire.stream_headers(1, 2, cluster.cluster_id),
            wire.HDR_SNAPSHOT_SIZE: str(size),
            "Content-Length": str(len(frame) + size + 4),
        },
    )
    _, writer = await asyncio.open_connection("127.0.0.1", b.port)
    writer.write(head + frame + b"x" * (size // 2))
    await writer.drain()
    snap_dir = Path(cluster.snapshot_root) / "member-2"
    await eventually(lambda: snap_dir.exists() and bool(list(snap_dir.iterdir())), "part file")
    writer.close()  # half the image, then gone
    await eventually(lambda: b.transport.stats()[1].snapshot_receive_failures == 1, "failure")
    assert b.rec.snapshots == []
    await eventually(lambda: list(snap_dir.iterdir()) == [], "no file left")
