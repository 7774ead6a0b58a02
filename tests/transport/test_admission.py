"""Receivers refuse streams that belong to another cluster, member or protocol version."""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp
import pytest

from node.raft.messages import Message, MessageType
from node.transport import wire
from tests.transport.harness import CLUSTER_ID, Cluster, eventually


async def test_stream_from_a_wrong_cluster_id_is_refused_with_412_and_a_clear_log(
    make_cluster: Callable[..., Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    cluster = make_cluster(2)
    b = await cluster.start(2)
    caplog.set_level(logging.ERROR)
    intruder = await cluster.start(1, cluster_id=CLUSTER_ID + 1)

    def lines(logger: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == logger]

    await eventually(
        lambda: any("status=412" in line for line in lines("node.transport.peer")),
        "the sender's log line about the 412",
    )
    rejected = lines("node.transport.receiver")
    assert any(
        f"local-cluster-id={CLUSTER_ID:x} remote-cluster-id={CLUSTER_ID + 1:x}" in line
        for line in rejected
    ), rejected
    intruder.transport.send([Message(MessageType.MsgHeartbeat, to=2, frm=1)])
    assert not intruder.transport.stats()[2].active
    assert b.rec.messages == []


@pytest.mark.parametrize(
    ("header", "value", "status", "reason"),
    [
        (wire.HDR_CLUSTER_ID, "123", 412, "cluster ID mismatch"),
        (wire.HDR_CLUSTER_ID, None, 412, "cluster ID mismatch"),
        (wire.HDR_TO, "3", 412, "request for member"),
        (wire.HDR_PROTOCOL, "0", 412, "incompatible transport protocol"),
        (wire.HDR_FROM, "99", 404, "sender not found"),
        (wire.HDR_FROM, "zz", 404, "sender not found"),
        ("Upgrade", "websocket", 426, "must ask for Upgrade: tcp"),
        ("Connection", "keep-alive", 426, "must ask for Upgrade: tcp"),
    ],
)
async def test_bad_stream_headers_are_refused(
    make_cluster: Callable[..., Cluster], header: str, value: str | None, status: int, reason: str
) -> None:
    cluster = make_cluster(3)
    b = await cluster.start(2)
    headers = wire.upgrade_headers(wire.stream_headers(1, 2, cluster.cluster_id))
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    async with (
        aiohttp.ClientSession() as session,
        session.get(b.url + wire.STREAM_PATH, headers=headers) as resp,
    ):
        assert resp.status == status
        assert reason in await resp.text()
    assert b.rec.messages == []
