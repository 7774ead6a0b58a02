"""`--protocol http`'s lean clients (loadgen.http_conn over loadgen.lean_http on the event
loop, and over loadgen.blocking_http for client threads) against a real etcd 3.4 member and
a real raftmon member: the workloads' requests, answers too big for one buffer (Go chunks
them), and etcd's error bodies, counted by kind; over TLS, a load by each."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from lab.certs import make_authority
from lab.cluster import LocalCluster
from lab.etcd_cluster import EtcdCluster
from loadgen.client import EtcdClient
from loadgen.config import LoadConfig
from loadgen.errors import OTHER, TOO_LARGE, EtcdError
from loadgen.http_conn import HttpConn
from loadgen.keyspace import KeySpace
from tests.helpers import FAST, require_tool
from tests.loadgen.conftest import run_load
from tests.loadgen.runs import load_argv

pytestmark = [pytest.mark.tools, pytest.mark.cluster]

TOO_LARGE_VALUE = 1_600_000  # over etcd's --max-request-bytes (1.5 MiB)


@pytest.fixture(params=["etcd", "raftmon"])
def endpoint(request: pytest.FixtureRequest) -> str:
    """The client URL of one real member of each kind."""
    cluster: EtcdCluster | LocalCluster = request.getfixturevalue(
        "etcd1" if request.param == "etcd" else "raftmon1"
    )
    return cluster.endpoints[0]


@pytest.fixture(params=["loop", "threads"])
def blocking(request: pytest.FixtureRequest) -> bool:
    """Which client: the event loop's, or the client threads' (awaited here on the loop,
    where it blocks for each request: the server is another process)."""
    return bool(request.param == "threads")


def keyspace(prefix: str, size: int, val_size: int = 16) -> KeySpace:
    cfg = LoadConfig(
        workload="put",
        endpoints=("127.0.0.1:2379",),
        key_prefix=prefix,
        key_space_size=size,
        val_size=val_size,
    )
    return KeySpace(cfg)


async def test_puts_ranges_and_txns_land_as_sent(endpoint: str, blocking: bool) -> None:
    keys = keyspace("/lean/kv/", 8)
    conn = HttpConn(endpoint, keys, timeout=5.0, limit=2, blocking=blocking)
    try:
        first = await conn.put_revision(0)
        await conn.put(1)
        assert await conn.put_revision(2) == first + 2
        await conn.txn_put(3, 5)  # keys 3..7 in one revision
        await conn.range(7, serializable=False)
        await conn.range(7, serializable=True)
        await conn.fixed_range(keys.first_key, keys.range_end, serializable=False)
        lease = await conn.lease_grant(30)
        await conn.lease_keepalive(lease)
        await conn.lease_revoke(lease)
    finally:
        await conn.close()
    async with EtcdClient([endpoint]) as etcd:
        got = await etcd.range(keys.first_key, keys.range_end)
    assert [kv.key for kv in got.kvs] == [keys.key(i) for i in range(8)]
    assert {kv.value for kv in got.kvs} == {keys.value}
    assert got.kvs[3].mod_revision == got.kvs[7].mod_revision == first + 3


async def test_an_answer_larger_than_gos_buffer_is_read_whole(
    endpoint: str, blocking: bool
) -> None:
    keys = keyspace("/lean/big/", 40, val_size=300)  # ~17 KB of JSON: Go answers chunked
    conn = HttpConn(endpoint, keys, timeout=5.0, limit=1, blocking=blocking)
    try:
        await conn.txn_put(0, 40)
        body = b'{"key":"%s","range_end":"%s"}' % (
            base64.b64encode(keys.first_key),
            base64.b64encode(keys.range_end),
        )
        answer = json.loads(await conn.lean.post("/v3/kv/range", body))
        assert int(answer["count"]) == 40
        assert base64.b64decode(answer["kvs"][39]["value"]) == keys.value
        await conn.put(0)  # the socket still frames the next answer
    finally:
        await conn.close()


async def test_etcds_error_bodies_are_counted_by_kind(endpoint: str, blocking: bool) -> None:
    conn = HttpConn(endpoint, keyspace("/lean/err/", 1), timeout=5.0, limit=1, blocking=blocking)
    try:
        with pytest.raises(EtcdError) as no_key:
            await conn.lean.post("/v3/kv/put", b'{"value":"eA=="}')
        assert (no_key.value.kind, no_key.value.status) == (OTHER, 400)
        assert "key is not provided" in no_key.value.message
        big = base64.b64encode(b"x" * TOO_LARGE_VALUE)
        with pytest.raises(EtcdError) as too_large:
            await conn.lean.post("/v3/kv/put", b'{"key":"eA==","value":"' + big + b'"}')
        assert too_large.value.kind == TOO_LARGE
        await conn.put(0)  # errors never cost the connection its next request
    finally:
        await conn.close()


@pytest.mark.parametrize("client_io", ["loop", "threads"])
def test_http_load_over_tls_with_etcds_client_certificate_flags(
    tmp_path: Path, client_io: str
) -> None:
    authority = make_authority(tmp_path / "ca")
    etcd = EtcdCluster(require_tool("etcd"), tmp_path / "etcd", 1, FAST, authority)
    with etcd:
        assert etcd.endpoints[0].startswith("https://")
        c = authority.client
        tls = {
            "cacert": str(authority.ca.cert_file),
            "cert": str(c.cert_file),
            "key": str(c.key_file),
        }
        reports = [
            run_load(
                load_argv(
                    etcd.endpoints, workload, "--total=60", clients=3, client_io=client_io, **tls
                )
            )
            for workload in ("put", "range")
        ]
    for code, report in reports:
        assert code == 0
        assert (report["succeeded"], report["failed"]) == (60, 0), report["errors"]
