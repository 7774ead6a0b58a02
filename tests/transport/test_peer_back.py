"""A peer that opens its stream to us ends our reconnect backoff toward it.

A follower resumed after a long SIGSTOP dials the leader at once; the leader's own stream
to it is in backoff after its dials timed out. Without this, the follower hears no
heartbeat for up to a backoff and pre-campaigns (etcd's follower dials the leader's
stream itself, so it hears the leader as soon as it runs again).
"""

from __future__ import annotations

from collections.abc import Callable

from node.transport import TransportOptions
from node.transport.peer import StreamState
from tests.transport.harness import Cluster, eventually

# A backoff no test waits out: only the peer's own stream can end it.
LONG_BACKOFF = TransportOptions(
    backoff_initial=600.0, backoff_max=600.0, dial_timeout=1.0, probe_interval=0.2
)


async def test_an_inbound_stream_from_the_peer_ends_the_backoff_toward_it(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, options=LONG_BACKOFF)
    a = await cluster.start(1)
    sender = a.transport._senders[2]
    await eventually(lambda: a.transport.stats()[2].probe_failures >= 1, "b is not up yet")
    await eventually(lambda: sender.state is StreamState.DISCONNECTED, "a waits out a backoff")

    b = await cluster.start(2)  # b dials a; a accepts, and redials b now
    await eventually(lambda: b.transport.stats()[1].active, "b's stream to a")
    await eventually(lambda: a.transport.stats()[2].active, "a's stream to b, before its backoff")


async def test_a_connected_or_connecting_stream_is_left_alone(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2)
    await cluster.start_all()
    await cluster.wait_connected()
    a = cluster.members[1]
    sender = a.transport._senders[2]
    sender.peer_is_back()  # nothing to cut short: the stream stays as it is
    assert sender.state is StreamState.CONNECTED
    assert a.transport.stats()[2].disconnects == 0


async def test_each_time_our_stream_to_a_peer_connects_it_is_reported_active(
    make_cluster: Callable[..., Cluster],
) -> None:
    # The server turns it into a leader's heartbeat to that peer at once (RawNode.heartbeat).
    cluster = make_cluster(2, options=LONG_BACKOFF)
    a = await cluster.start(1)
    b = await cluster.start(2)
    await eventually(lambda: a.rec.active == [2], "a's stream to b connected")
    await eventually(lambda: b.rec.active == [1], "b's stream to a connected")
    await b.stop()
    del cluster.members[2]
    await eventually(lambda: not a.transport.stats()[2].active, "a's stream to b broke")
    b = await cluster.start(2)  # restarted: its stream to a ends a's backoff toward it
    await eventually(lambda: a.rec.active == [2, 2], "a's stream to b connected again")
