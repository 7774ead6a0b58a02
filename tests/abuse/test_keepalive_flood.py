"""A lease keep-alive flood on the leader does not cost it its leadership (issue #18, 4).

Twenty connections stream keep-alives to the leader's /v3/lease/keepalive as fast
as it takes them. Before the fix the leader's event loop never got back to its
Raft tick and the followers elected another leader about 1.4 s in; etcd kept its
leader. Asserted: the same leader and no leader change seen by any member, with
etcd's default timings (100 ms heartbeat, 1 s election timeout), and the flood and
an ordinary client both answered.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from lab.cluster import LocalCluster
from tests.abuse.conftest import ClusterFactory
from tests.cluster.etcdjson import call, put

pytestmark = pytest.mark.cluster

FLOOD_SECONDS = 6.0
CONNECTIONS = 20


def leader_changes(cluster: LocalCluster) -> dict[str, float]:
    out = {}
    for m in cluster.members:
        with urllib.request.urlopen(m.metrics_url + "/metrics", timeout=10) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("etcd_server_leader_changes_seen_total "):
                    out[m.name] = float(line.split()[-1])
    return out


async def flood_one(host: str, port: int, lease: str, until: float) -> int:
    """Stream keep-alives (200 per chunk) until `until`; the answers read, counted."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /v3/lease/keepalive HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = json.dumps({"ID": lease}).encode() * 200
    answered = 0

    async def read_answers() -> None:
        nonlocal answered
        while data := await reader.read(65536):
            answered += data.count(b'"result"')

    drain = asyncio.create_task(read_answers())
    try:
        while (left := until - time.monotonic()) > 0:
            writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            try:
                await asyncio.wait_for(writer.drain(), left)
            except TimeoutError:
                break
    finally:
        writer.close()
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
    return answered


async def flood(url: str, lease: str, seconds: float) -> int:
    host, port = url.removeprefix("http://").split(":")
    until = time.monotonic() + seconds
    counts = await asyncio.wait_for(
        asyncio.gather(*(flood_one(host, int(port), lease, until) for _ in range(CONNECTIONS))),
        seconds + 30,
    )
    return sum(counts)


def test_a_keepalive_flood_on_the_leader_keeps_the_leader(cluster_of: ClusterFactory) -> None:
    cluster = cluster_of(3)
    leader = cluster.wait_leader()
    before = leader_changes(cluster)
    url = cluster.member(leader).client_url
    lease = call(url, "/v3/lease/grant", {"TTL": 60})["ID"]
    other = next(m.client_url for m in cluster.members if m.name != leader)

    async def run() -> tuple[int, int]:
        flooding = asyncio.create_task(flood(url, lease, FLOOD_SECONDS))
        served = 0
        while not flooding.done():  # an ordinary client, answered during the flood
            await asyncio.to_thread(put, other, "during/flood", str(served), 20.0)
            served += 1
            await asyncio.sleep(0.2)
        return await flooding, served

    answered, served = asyncio.run(run())
    assert answered > 0
    assert served > 0
    assert cluster.leader() == leader
    assert leader_changes(cluster) == before
