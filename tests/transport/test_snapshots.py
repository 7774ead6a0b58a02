"""Snapshot streaming: a multi-MiB image arrives byte-identical, failures are reported."""

from __future__ import annotations

import errno
import os
import random
import zlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import crc32c
import pytest

from node.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from node.transport import TransportOptions, snapshot, wire
from node.transport.codec import encode
from tests.transport.harness import FAST, Cluster

META = SnapshotMetadata(index=12345, term=7, conf_state=ConfState(voters=(1, 2, 3)))


def msg_snap(frm: int, to: int, data: bytes = b"") -> Message:
    return Message(MessageType.MsgSnap, to=to, frm=frm, term=7, snapshot=Snapshot(META, data))


def write_image(path: Path, size: int, seed: int = 7) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


async def test_multi_mib_snapshot_arrives_byte_identical_and_reports_success(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    # Small chunks make the 5 MiB image cross many chunk and read boundaries.
    cluster = make_cluster(2, options=TransportOptions(snapshot_chunk_size=256 * 1024))
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    image = write_image(tmp_path / "db", 5 * 1024 * 1024 + 17)
    a.transport.send_snapshot(msg_snap(1, 2), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, False)], "snapshot success status")
    assert len(b.rec.snapshots) == 1
    got, path, content = b.rec.snapshots[0]
    assert content == image
    assert got.type is MessageType.MsgSnap
    assert got.snapshot == Snapshot(META, b"")
    assert (got.frm, got.to, got.term) == (1, 2, 7)
    assert Path(path).parent == Path(cluster.snapshot_root) / "member-2"
    assert Path(path).name == f"{META.index:016x}.snap.db"
    assert not [p for p in os.listdir(Path(path).parent) if p.endswith(".part")]
    out, inn = a.transport.stats()[2], b.transport.stats()[1]
    assert out.snapshot_send_success == inn.snapshot_receive_success == 1
    assert out.snapshot_send_inflight == inn.snapshot_receive_inflight == 0
    assert inn.received_bytes >= len(image)
    assert out.sent_bytes >= len(image)


async def test_snapshot_to_a_stopped_receiver_reports_failure(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster(3)
    a = await cluster.start(1)  # members 2 and 3 never start
    write_image(tmp_path / "db", 1024)
    a.transport.send_snapshot(msg_snap(1, 3), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(3, True)], "failed snapshot status")
    await a.rec.wait(lambda: 3 in a.rec.unreachable, "unreachable after failed snapshot")
    assert a.transport.stats()[3].snapshot_send_failures == 1


async def test_missing_image_file_reports_failure(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster(2)
    await cluster.start_all()
    a = cluster.members[1]
    a.transport.send_snapshot(msg_snap(1, 2), str(tmp_path / "nope"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, True)], "failed snapshot status")


async def test_msgsnap_given_to_send_is_streamed_from_memory(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    a.transport.send([msg_snap(1, 2, data=b"in-memory image" * 1000)])
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, False)], "snapshot success status")
    assert b.rec.snapshots[0][2] == b"in-memory image" * 1000


async def test_without_on_snapshot_the_image_is_inlined_into_on_message(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    a = await cluster.start(1)
    b = await cluster.start(2, on_snapshot=None)
    a.transport.send([msg_snap(1, 2, data=b"tiny")])
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "inlined MsgSnap")
    assert b.rec.messages[0].snapshot == Snapshot(META, b"tiny")


async def test_second_snapshot_while_one_is_in_flight_fails_fast(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster(2, options=FAST)
    await cluster.start_all()
    a = cluster.members[1]
    a.transport.set_fault(2, delay_seconds=0.3)  # keeps the first one in flight
    write_image(tmp_path / "db", 1024)
    a.transport.send_snapshot(msg_snap(1, 2), str(tmp_path / "db"))
    a.transport.send_snapshot(msg_snap(1, 2), str(tmp_path / "db"))
    await a.rec.wait(lambda: len(a.rec.snapshot_status) == 2, "both statuses")
    assert a.rec.snapshot_status == [(2, True), (2, False)]


async def test_truncated_or_corrupt_upload_is_refused_and_leaves_no_file(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    b = await cluster.start(2)
    headers = wire.stream_headers(1, 2, cluster.cluster_id)
    frame = encode(msg_snap(1, 2))
    bodies = {
        "truncated": frame + b"x" * 10,
        "bad crc": frame + b"x" * 100 + b"\x00\x00\x00\x00",
    }
    async with aiohttp.ClientSession() as session:
        for body in bodies.values():
            async with session.post(
                b.url + wire.SNAPSHOT_PATH,
                data=body,
                headers={**headers, wire.HDR_SNAPSHOT_SIZE: "100"},
            ) as resp:
                assert resp.status == 400
    assert b.rec.snapshots == []
    assert b.transport.stats()[1].snapshot_receive_failures == 2
    snap_dir = Path(cluster.snapshot_root) / "member-2"
    assert not snap_dir.exists() or os.listdir(snap_dir) == []


@pytest.mark.parametrize(
    ("kind", "trailer", "status", "why"),
    [
        ("crc32c", crc32c.crc32c(b"y" * 100), 204, ""),
        ("crc32c", zlib.crc32(b"y" * 100), 400, "checksum mismatch"),
        ("crc64", 0, 400, "unknown image checksum kind 'crc64'"),
    ],
)
async def test_the_checksum_kind_an_upload_names_is_the_one_checked(
    make_cluster: Callable[..., Cluster], kind: str, trailer: int, status: int, why: str
) -> None:
    cluster = make_cluster(2)
    b = await cluster.start(2)
    headers = {
        **wire.stream_headers(1, 2, cluster.cluster_id),
        wire.HDR_SNAPSHOT_SIZE: "100",
        wire.HDR_SNAPSHOT_CHECKSUM: kind,
    }
    body = encode(msg_snap(1, 2)) + b"y" * 100 + trailer.to_bytes(4, "little")
    async with (
        aiohttp.ClientSession() as session,
        session.post(b.url + wire.SNAPSHOT_PATH, data=body, headers=headers) as resp,
    ):
        assert resp.status == status
        assert why in await resp.text()
    assert len(b.rec.snapshots) == (status == 204)
    if status != 204:
        snap_dir = Path(cluster.snapshot_root) / "member-2"
        assert not snap_dir.exists() or os.listdir(snap_dir) == []


async def test_an_image_is_synced_while_it_arrives_and_arrives_byte_identical(
    make_cluster: Callable[..., Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(snapshot, "SYNC_STEP", 512 * 1024)
    monkeypatch.setattr(os, "fdatasync", counting)
    cluster = make_cluster(2, options=TransportOptions(snapshot_chunk_size=256 * 1024))
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    image = write_image(tmp_path / "db", 3 * 1024 * 1024 + 5)
    a.transport.send_snapshot(msg_snap(1, 2), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, False)], "snapshot success status")
    assert b.rec.snapshots[0][2] == image
    assert synced  # before the final fsync, while the upload went on


async def test_a_failed_sync_while_an_image_arrives_fails_the_upload(
    make_cluster: Callable[..., Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux reports a writeback error to one fsync of a descriptor: the final fsync may
    # succeed after an early one failed, so the early one's error must fail the upload.
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "injected writeback error")

    monkeypatch.setattr(snapshot, "SYNC_STEP", 512 * 1024)
    monkeypatch.setattr(os, "fdatasync", failing)
    cluster = make_cluster(2, options=TransportOptions(snapshot_chunk_size=256 * 1024))
    await cluster.start_all()
    a, b = cluster.members[1], cluster.members[2]
    write_image(tmp_path / "db", 3 * 1024 * 1024)
    a.transport.send_snapshot(msg_snap(1, 2), str(tmp_path / "db"))
    await a.rec.wait(lambda: a.rec.snapshot_status == [(2, True)], "failed snapshot status")
    assert b.rec.snapshots == []
    member_dir = Path(cluster.snapshot_root) / "member-2"
    assert not [p for p in os.listdir(member_dir) if p.endswith((".part", ".snap.db"))]
