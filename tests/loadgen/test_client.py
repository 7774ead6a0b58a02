"""The reusable async client against real etcd 3.4: every call the cluster tests and lab use."""

from __future__ import annotations

import asyncio

import pytest

from lab.etcd_cluster import EtcdCluster
from loadgen.client import EtcdClient, compare_value, prefix_end, put_op, range_op
from loadgen.errors import CONN_REFUSED, OTHER, EtcdError
from tests.helpers import free_port

pytestmark = [pytest.mark.tools, pytest.mark.cluster]


def test_prefix_end_increments_the_last_byte() -> None:
    assert prefix_end(b"foo") == b"fop"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\x00"


async def test_kv_round_trip(etcd1: EtcdCluster) -> None:
    async with EtcdClient(etcd1.endpoints) as etcd:
        first = await etcd.put("/client/a", "1")
        second = await etcd.put("/client/a", "2", prev_kv=True)
        assert second.revision == first.revision + 1
        assert second.prev_kv is not None
        assert second.prev_kv.value == b"1"
        await etcd.put("/client/b", b"\x00\xff")
        kv = await etcd.get("/client/a")
        assert kv is not None
        assert (kv.value, kv.version) == (b"2", 2)
        ranged = await etcd.range("/client/", prefix=True, serializable=True)
        assert [k.key for k in ranged.kvs] == [b"/client/a", b"/client/b"]
        assert ranged.kvs[1].value == b"\x00\xff"
        assert (await etcd.range("/client/", prefix=True, count_only=True)).count == 2
        deleted = await etcd.delete("/client/", prefix=True, prev_kv=True)
        assert deleted.deleted == 2
        assert await etcd.get("/client/a") is None


async def test_txn_takes_the_branch_its_compare_selects(etcd1: EtcdCluster) -> None:
    async with EtcdClient(etcd1.endpoints) as etcd:
        await etcd.put("/txn/k", "v1")
        ok = await etcd.txn([compare_value("/txn/k", "v1")], [put_op("/txn/k", "v2")])
        assert ok.succeeded
        failed = await etcd.txn(
            [compare_value("/txn/k", "v1")], [put_op("/txn/k", "v3")], [range_op("/txn/k")]
        )
        assert not failed.succeeded
        assert "response_range" in failed.responses[0]
        kv = await etcd.get("/txn/k")
        assert kv is not None
        assert kv.value == b"v2"


async def test_watch_stream_delivers_puts_in_order(etcd1: EtcdCluster) -> None:
    async with EtcdClient(etcd1.endpoints) as etcd:
        async with etcd.watch("/w/", prefix=True) as stream:
            responses = aiter(stream)
            created = await asyncio.wait_for(anext(responses), 5)
            assert created.created
            revs = [(await etcd.put(f"/w/{i}", str(i))).revision for i in range(3)]
            seen: list[int] = []
            while len(seen) < 3:
                response = await asyncio.wait_for(anext(responses), 5)
                seen += [ev.kv.mod_revision for ev in response.events]
            assert seen == revs


async def test_lease_grant_keepalive_revoke(etcd1: EtcdCluster) -> None:
    async with EtcdClient(etcd1.endpoints) as etcd:
        lease, ttl = await etcd.lease_grant(30)
        assert lease > 0
        assert ttl == 30
        await etcd.put("/lease/k", "v", lease=lease)
        assert await etcd.lease_keepalive(lease) == 30
        await etcd.lease_revoke(lease)
        assert await etcd.get("/lease/k") is None
        with pytest.raises(EtcdError) as info:
            await etcd.lease_keepalive(lease)
        assert info.value.kind == OTHER


async def test_status_metrics_members_and_health(etcd1: EtcdCluster) -> None:
    async with EtcdClient(etcd1.endpoints) as etcd:
        status = await etcd.status()
        assert status.is_leader
        assert status.version.startswith("3.4")
        assert await etcd.leader_endpoint() == etcd1.endpoints[0]
        assert len(await etcd.member_list()) == 1
        assert await etcd.health()
        metrics = await etcd.metrics()
        assert "etcd_server_has_leader" in metrics.names()
        assert metrics.get("etcd_server_has_leader") == 1


async def test_errors_are_typed_with_their_kind(etcd1: EtcdCluster) -> None:
    async with EtcdClient(etcd1.endpoints) as etcd:
        with pytest.raises(EtcdError) as info:
            await etcd.put("", "v")  # etcd: key is not provided
        assert info.value.status == 400
        assert info.value.code == 3
    async with EtcdClient([f"127.0.0.1:{free_port()}"]) as closed:
        with pytest.raises(EtcdError) as info:
            await closed.put("k", "v")
        assert info.value.kind == CONN_REFUSED
