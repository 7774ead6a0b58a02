"""A process that reaches the peer port and speaks the wire protocol cannot move the cluster.

The impostor is a plain aiohttp client. It knows what anyone can learn: the cluster id and
member ids (in every client response header), and the codec. Issue 18 found that one
forged heartbeat at term 2**64-1 left a cluster leaderless for good, and one forged MsgApp
"from the leader" diverged a follower. Here every such attempt is refused or dropped; the
term, the leader and the data (every key on every member, and the revision) stay as they
were; the real leader keeps serving puts; and a counter says what happened.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.cluster import LocalCluster, MemberProcess
from node.mvcc import requests as rq
from node.mvcc.codec import encode_request
from node.raft.messages import Entry, Message, MessageType
from node.transport import wire
from node.transport.codec import encode
from tests.cluster.etcdjson import b64, call, put, unb64, value_of, wait_until

pytestmark = pytest.mark.cluster

MT = MessageType
# A longer election timeout than the other cluster tests: a leader change caused by a
# noisy machine would read as "the term moved" here.
STEADY = ["--election-timeout=2000"]
NOT_A_MEMBER = 0xBAD5EED
REFUSED = "raftmon_network_peer_refused_total"
RECEIVED_FAILURES = "etcd_network_peer_received_failures_total"
CORE_DROPPED = "raftmon_raft_messages_dropped_total"


# ---------------------------------------------------------------------------- observing


def status(m: MemberProcess) -> dict[str, Any]:
    return call(m.client_url, "/v3/maintenance/status", {})


def ids(m: MemberProcess) -> tuple[int, int]:
    """(cluster id, member id), as any client of the member can read them."""
    header = status(m)["header"]
    return int(header["cluster_id"]), int(header["member_id"])


def view(m: MemberProcess) -> tuple[str, str, str, list[tuple[str, str, str]]]:
    """(term, leader, revision, every key with its value and mod revision) on one member."""
    st = status(m)
    everything = call(m.client_url, "/v3/kv/range", {"key": b64("\0"), "range_end": b64("\0")})
    kvs = [
        (unb64(kv["key"]), unb64(kv.get("value", "")), kv["mod_revision"])
        for kv in everything.get("kvs", [])
    ]
    return st["raftTerm"], st["leader"], st["header"]["revision"], kvs


def views(members: list[MemberProcess]) -> dict[str, Any]:
    return {m.name: view(m) for m in members}


def metric(m: MemberProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(m.metrics_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def reaches(m: MemberProcess, name: str, at_least: float, **labels: str) -> Callable[[], bool]:
    """A check that `name{labels}` on `m` has reached `at_least`."""
    return lambda: metric(m, name, **labels) >= at_least


def serves_puts(cluster: LocalCluster, live: list[MemberProcess], key: str) -> None:
    """The real leader takes a put and every live member applies it."""
    leader = cluster.member(cluster.wait_leader())
    assert "error" not in put(leader.client_url, key, "honest")
    for m in live:
        wait_until(lambda m=m: value_of(m.client_url, key) == "honest", what=f"{key} on {m.name}")


# ---------------------------------------------------------------------------- the impostor


def headers(cluster_id: int, frm: int, to: int) -> dict[str, str]:
    return wire.upgrade_headers(wire.stream_headers(frm, to, cluster_id))


def forge(
    target: MemberProcess,
    hdrs: dict[str, str],
    frames: bytes,
    until: Callable[[], bool] | None = None,
) -> tuple[int, str]:
    """Dial `target`'s peer port with `hdrs`; if it upgrades, write `frames` and keep the
    stream open until `until()` holds (bounded). Returns the HTTP status and refusal text."""

    async def run() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(target.peer_url + wire.STREAM_PATH, headers=hdrs)
            try:
                if resp.status != 101:
                    return resp.status, await resp.text()
                sock = resp.connection.transport if resp.connection else None
                assert sock is not None
                sock.write(frames)
                deadline = time.monotonic() + 15
                while until is not None and not until():
                    assert time.monotonic() < deadline, "the member never counted the frames"
                    await asyncio.sleep(0.05)
                return resp.status, ""
            finally:
                resp.close()

    return asyncio.run(run())


def forged_put(term: int, after: int, frm: int, to: int) -> Message:
    """A MsgApp appending and committing a real put of key `forged` right after `after`."""
    data = encode_request(0x0BAD, rq.PutRequest(key=b"forged", value=b"evil"))
    return Message(
        MT.MsgApp,
        to=to,
        frm=frm,
        term=term,
        log_term=term,
        index=after,
        commit=after + 1,
        entries=[Entry(term, after + 1, data=data)],
    )


# ---------------------------------------------------------------------------- the tests


def test_impostors_are_refused_at_the_door_and_nothing_moves(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = fresh_cluster(3, STEADY)
    leader = cluster.member(cluster.wait_leader())
    follower = next(m for m in cluster.members if m is not leader)
    cluster_id, leader_id = ids(leader)
    _, follower_id = ids(follower)
    serves_puts(cluster, cluster.members, "warm-up")
    before = views(cluster.members)
    term = int(before[leader.name][0])
    frames = encode(Message(MT.MsgHeartbeat, to=follower_id, frm=leader_id, term=2**64 - 1))

    # (d) the right ids, another cluster: 412, as etcd's rafthttp.
    status_, text = forge(follower, headers(cluster_id + 1, leader_id, follower_id), frames)
    assert (status_, "cluster ID mismatch" in text) == (412, True), text
    assert metric(follower, REFUSED, reason="cluster_id_mismatch") == 1

    # (c) a vote request from a process that is not a member: 404 before any frame is read.
    vote = encode(Message(MT.MsgVote, to=leader_id, frm=NOT_A_MEMBER, term=term + 100))
    status_, text = forge(leader, headers(cluster_id, NOT_A_MEMBER, leader_id), vote)
    assert (status_, "error sender not found" in text) == (404, True), text
    assert metric(leader, REFUSED, reason="unknown_sender") == 1

    # (a, b) posing as the leader to a follower, and as that follower to the leader, while
    # both stream for real: 409, and the live streams are not displaced.
    put_frame = encode(forged_put(term, int(status(leader)["raftIndex"]), leader_id, follower_id))
    status_, text = forge(follower, headers(cluster_id, leader_id, follower_id), put_frame + frames)
    assert (status_, "already has a live stream" in text) == (409, True), text
    status_, text = forge(leader, headers(cluster_id, follower_id, leader_id), frames)
    assert status_ == 409, text
    assert metric(follower, REFUSED, reason="stream_in_use") == 1
    assert metric(leader, REFUSED, reason="stream_in_use") == 1

    assert views(cluster.members) == before
    serves_puts(cluster, cluster.members, "after-the-door")
    assert all(value_of(m.client_url, "forged") is None for m in cluster.members)


def test_frames_no_member_sends_are_dropped_and_nothing_moves(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    """With a follower down its id is free: the impostor's stream as that member is
    accepted, and every frame it sends is one no member sends."""
    cluster = fresh_cluster(3, STEADY)
    leader = cluster.member(cluster.wait_leader())
    down, other = [m for m in cluster.members if m is not leader]
    cluster_id, leader_id = ids(leader)
    _, down_id = ids(down)
    _, other_id = ids(other)
    serves_puts(cluster, cluster.members, "warm-up")
    cluster.kill(down.name)
    live = [leader, other]
    before = views(live)
    term = int(before[leader.name][0])
    last = int(status(leader)["raftIndex"])
    sender = wire.id_hex(down_id)  # the From label of what the impostor sends

    for target, target_id in ((other, other_id), (leader, leader_id)):
        frames = [
            # (a) finding 2 of issue 18: a heartbeat at term 2**64-1
            Message(MT.MsgHeartbeat, to=target_id, frm=down_id, term=2**64 - 1),
            # (b) finding 3: a MsgApp posing as the leader, carrying a put, on this stream
            forged_put(term, last, leader_id, target_id),
            # (c) a vote request from a non-member, on a member's stream
            Message(MT.MsgVote, to=target_id, frm=NOT_A_MEMBER, term=term + 1, index=last),
        ]
        failures = metric(target, RECEIVED_FAILURES, From=sender)
        forge(
            target,
            headers(cluster_id, down_id, target_id),
            b"".join(encode(m) for m in frames),
            until=reaches(target, RECEIVED_FAILURES, failures + len(frames), From=sender),
        )
        # (b') the same put as the dead member itself at the current term: it passes the
        # transport's screen, and the core ignores it (not the leader of this term).
        frame = encode(forged_put(term, last, down_id, target_id))
        dropped = metric(target, CORE_DROPPED)
        forge(
            target,
            headers(cluster_id, down_id, target_id),
            frame,
            until=reaches(target, CORE_DROPPED, dropped + 1),
        )
        # The put below is stepped after every forged frame (the driver drains its inbox
        # before proposals), so a forged entry would show up in this comparison.
        serves_puts(cluster, live, f"after-{target.name}")
        assert all(value_of(m.client_url, "forged") is None for m in live)
        after = views(live)
        for m in live:
            assert after[m.name][:2] == before[m.name][:2]  # term and leader
            assert int(after[m.name][2]) == int(before[m.name][2]) + 1  # only the honest put
        before = after

    cluster.restart(down.name)
    serves_puts(cluster, cluster.members, "all-three")
    final = views(cluster.members)
    assert {v[0] for v in final.values()} == {str(term)}, final  # the term never moved
    assert {v[1] for v in final.values()} == {str(leader_id)}, final
    assert len({repr(v[2:]) for v in final.values()}) == 1, final  # same revision and data
    assert all(value_of(m.client_url, "forged") is None for m in cluster.members)
