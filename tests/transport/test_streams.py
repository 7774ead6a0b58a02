"""Long-lived streams between real transports: order, batching, byte accounting, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from node.raft.messages import Entry, Message, MessageType
from node.transport import TransportOptions
from node.transport.codec import encode
from node.transport.wire import STREAM_PATH
from tests.transport.harness import FAST, Cluster, Member, eventually

# Keep-alives would add bytes at times the test does not control; push them past its end.
QUIET = TransportOptions(
    backoff_initial=0.01, backoff_max=0.2, probe_interval=0.2, keepalive_interval=60.0
)


def heartbeats(frm: int, to: int, n: int, start: int = 0) -> list[Message]:
    return [
        Message(MessageType.MsgHeartbeat, to=to, frm=frm, term=1, commit=start + i)
        for i in range(n)
    ]


def big_append(frm: int, to: int, index: int) -> Message:
    entries = [Entry(2, index + 1 + i, data=bytes([i % 256]) * 300) for i in range(64)]
    return Message(
        MessageType.MsgApp, to=to, frm=frm, term=2, log_term=2, index=index, entries=entries
    )


async def test_three_members_exchange_messages_in_order_and_count_bytes_both_ways(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(3, options=QUIET)
    sent: dict[tuple[int, int], list[Message]] = {}
    for a in cluster.members:
        for b in cluster.members:
            if a == b:
                continue
            # Interleave many small messages with large MsgApp batches and one ~2 MiB entry.
            msgs: list[Message] = []
            for k in range(20):
                msgs += heartbeats(a, b, 50, start=k * 50)
                msgs.append(big_append(a, b, index=k * 64))
            msgs.append(
                Message(
                    MessageType.MsgApp,
                    to=b,
                    frm=a,
                    term=3,  # a term-less MsgApp is refused: no member sends one
                    entries=[Entry(3, 9999, data=b"L" * (2 << 20))],
                )
            )
            sent[(a, b)] = msgs
    for (a, _b), msgs in sent.items():
        # Several send() calls per event-loop turn: the writer must batch and keep order.
        for at in range(0, len(msgs), 37):
            cluster.members[a].transport.send(msgs[at : at + 37])
    for b, member in cluster.members.items():
        expected = {a: msgs for (a, to), msgs in sent.items() if to == b}

        def arrived(member: Member = member, expected: dict[int, list[Message]] = expected) -> bool:
            return all(len(member.rec.from_peer(a)) == len(m) for a, m in expected.items())

        await member.rec.wait(arrived, f"all messages at member {b}", within=30)
        for a, msgs in expected.items():
            assert member.rec.from_peer(a) == msgs, f"order or content differs {a}->{b}"
    for (a, b), msgs in sent.items():
        wire_bytes = sum(len(encode(m)) for m in msgs)
        out = cluster.members[a].transport.stats()[b]
        inn = cluster.members[b].transport.stats()[a]
        # Frames only: QUIET sends no keep-alive, and an upgraded stream needs no opener.
        assert out.sent_bytes == inn.received_bytes == wire_bytes
        assert out.messages_sent == inn.messages_received == len(msgs)
        assert out.send_failures == 0
        assert inn.receive_failures == 0


async def test_send_writes_to_the_socket_at_once_and_never_blocks(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2, options=QUIET)
    a, b = cluster.members[1], cluster.members[2]
    burst = heartbeats(1, 2, 3000)
    for m in burst:  # 3000 separate calls in one loop turn, no await in between
        a.transport.send([m])
    # Each call wrote its batch to the socket (no writer task has run), queue empty.
    assert a.transport.stats()[2].messages_sent == 3000
    assert not a.transport._senders[2]._queue
    await b.rec.wait(lambda: len(b.rec.messages) == 3000, "the burst")
    assert [m.commit for m in b.rec.messages] == list(range(3000))


async def test_messages_to_unknown_peers_or_self_are_dropped_quietly(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2, options=QUIET)
    a, b = cluster.members[1], cluster.members[2]
    a.transport.send(
        [
            Message(MessageType.MsgHeartbeat, to=77, frm=1),
            Message(MessageType.MsgHeartbeat, to=1, frm=1),
        ]
    )
    a.transport.send(heartbeats(1, 2, 1))
    await b.rec.wait(lambda: len(b.rec.messages) == 1, "the one valid message")
    assert a.transport.stats()[2].send_failures == 0


async def test_receiver_exception_is_logged_and_the_stream_survives(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    a = await cluster.start(1)
    failed_once = False

    def flaky(msg: Message) -> None:
        nonlocal failed_once
        if not failed_once:
            failed_once = True
            raise RuntimeError("driver bug")
        b.rec.on_message(msg)

    b = await cluster.start(2, on_message=flaky)
    await cluster.wait_connected()
    a.transport.send(heartbeats(1, 2, 5))
    await b.rec.wait(lambda: len(b.rec.messages) == 4, "messages after the failing one")
    assert b.transport.stats()[1].receive_failures == 0


async def test_stop_is_idempotent_and_listener_shutdown_does_not_hang(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(3, options=FAST)
    member = cluster.members[2]
    async with asyncio.timeout(5):  # aiohttp would wait 60 s for open streams without our hook
        await member.stop()
        await member.transport.stop()
        await asyncio.gather(member.transport.stop(), member.transport.stop())
    assert not member.transport._tasks
    member.transport.send(heartbeats(2, 1, 1))  # after stop: dropped, no error


async def test_graceful_stop_is_not_counted_as_a_receive_failure(
    connected_cluster: Callable[..., Awaitable[Cluster]],
) -> None:
    cluster = await connected_cluster(2, options=QUIET)
    a, b = cluster.members[1], cluster.members[2]
    await a.transport.stop()  # a ends its outbound stream cleanly; b's listener stays up
    await eventually(lambda: b.transport._receiver._inbound.get(1) is None, "stream closed")
    assert b.transport.stats()[1].receive_failures == 0


async def test_requests_before_start_are_refused_with_503(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    member = cluster.build(1)
    app = web.Application()
    member.transport.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", member.port).start()
        async with aiohttp.ClientSession() as s, s.get(member.url + STREAM_PATH) as r:
            assert r.status == 503
    finally:
        await runner.cleanup()
        await member.transport.stop()
