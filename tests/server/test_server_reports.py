"""What one member's server reports: to the exporter, and to clients when a proposal times out.

In-process and never started (no ticks, no peers, no listeners): each test drives the
one piece of the server it is about, so it is fast and exact. The live cluster tests in
tests/cluster/test_metrics_live.py check the same families end to end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics import MemberMetrics
from node import errors as E
from node.config import MemberConfig
from node.member.state import ServerStateSource
from node.mvcc import requests as rq
from node.mvcc.codec import encode_request
from node.raft import StateType
from node.raft.messages import Entry
from node.server import EtcdServer

OTHER_LEADER = 0xBEEF
NEWER_LEADER = 0xCAFE
REQUEST_TIMEOUT = 0.3  # seconds, instead of etcd's 5 s + 2 election timeouts


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EtcdServer]:
    monkeypatch.setattr(
        MemberConfig, "request_timeout_seconds", property(lambda self: REQUEST_TIMEOUT)
    )
    peer = ("http://127.0.0.1:9",)
    cfg = MemberConfig(
        name="m1",
        data_dir=str(tmp_path / "m1"),
        initial_cluster={"m1": peer},
        initial_advertise_peer_urls=peer,
        heartbeat_interval_ms=10,
        election_timeout_ms=100,  # leader-failure window: 2 x 100 ms
    )
    metrics = MemberMetrics(CollectorRegistry(), process_metrics=False)
    d = EtcdServer(cfg, observer=metrics)
    metrics.attach_state(ServerStateSource(d))
    try:
        yield d
    finally:
        d.kv.close()
        d.wal.close()


def sample(d: EtcdServer, name: str, **labels: str) -> float:
    assert isinstance(d.observer, MemberMetrics)
    value = d.observer.registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


# ---- etcd_disk_defrag_inflight ---------------------------------------------------------


async def test_defrag_inflight_is_1_while_a_defragmentation_runs_and_0_after(
    server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, release = threading.Event(), threading.Event()
    step = server.kv.defrag_step

    def slow_step(pages: int = 1) -> int | None:
        running.set()
        assert release.wait(10)
        return step(pages)

    monkeypatch.setattr(server.kv, "defrag_step", slow_step)
    assert sample(server, "etcd_disk_defrag_inflight") == 0
    task = asyncio.create_task(server.defragment())
    assert await asyncio.to_thread(running.wait, 10)
    assert sample(server, "etcd_disk_defrag_inflight") == 1
    release.set()
    await asyncio.wait_for(task, 10)
    assert sample(server, "etcd_disk_defrag_inflight") == 0
    assert sample(server, "etcd_disk_backend_defrag_duration_seconds_count") == 1


async def test_defrag_inflight_goes_back_to_0_when_the_defragmentation_fails(
    server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_step(pages: int = 1) -> int | None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(server.kv, "defrag_step", broken_step)
    with pytest.raises(OSError, match="disk I/O error"):
        await server.defragment()
    assert sample(server, "etcd_disk_defrag_inflight") == 0


# ---- etcd_server_apply_duration_seconds{success="false"} -------------------------------


def test_a_failed_apply_is_timed_under_its_op_with_success_false(server: EtcdServer) -> None:
    entries = [
        Entry(term=1, index=1, data=encode_request(1, rq.LeaseRevokeRequest(id=404))),
        Entry(term=1, index=2, data=encode_request(2, rq.PutRequest(key=b"k", value=b"v"))),
    ]
    server.applier.apply(entries)
    server.applier.observe()  # the Ready loop reports applies once the answers have left
    count = "etcd_server_apply_duration_seconds_count"
    assert sample(server, count, version="v3", op="LeaseRevoke", success="false") == 1
    assert sample(server, count, version="v3", op="LeaseRevoke", success="true") == 0
    assert sample(server, count, version="v3", op="Put", success="true") == 1
    # an unknown lease was not revoked: the revoke counter only counts real revokes
    assert sample(server, "etcd_debugging_lease_revoked_total") == 0


async def test_an_apply_is_reported_only_after_its_client_was_answered(server: EtcdServer) -> None:
    """The apply histograms are recorded by `observe`, after the waiting client's future is
    resolved: the client's answer does not wait for the metrics."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[object] = loop.create_future()
    server.proposals.waiters[7] = waiter
    assert isinstance(server.observer, MemberMetrics)
    registry = server.observer.registry

    def puts_timed() -> float:
        labels = {"version": "v3", "op": "Put", "success": "true"}
        return registry.get_sample_value("etcd_server_apply_duration_seconds_count", labels) or 0

    put = encode_request(7, rq.PutRequest(b"k", b"v"))
    server.applier.apply([Entry(term=1, index=1, data=put)])
    assert waiter.done()
    assert puts_timed() == 0
    server.applier.observe()
    assert puts_timed() == 1
    server.applier.observe()  # reported once
    assert puts_timed() == 1


# ---- the request-timeout message (etcd's parseProposeCtxErr) ---------------------------


async def propose_and_fail(server: EtcdServer, during: list[int]) -> str:
    """Propose while leader `server.lead` is known; see the leaders in `during`; time out."""

    async def leaders_change() -> None:
        for lead in during:
            await asyncio.sleep(0.02)
            server.loop.on_soft_state(lead, StateType.StateFollower)

    changes = asyncio.create_task(leaders_change())
    with pytest.raises(E.EtcdError) as failed:
        await server.propose(rq.PutRequest(key=b"k", value=b"v"))
    await changes
    return failed.value.message


async def test_a_timeout_under_one_leader_throughout_is_a_plain_request_timeout(
    server: EtcdServer,
) -> None:
    server.loop.on_soft_state(OTHER_LEADER, StateType.StateFollower)
    assert await propose_and_fail(server, []) == E.REQUEST_TIMEOUT


async def test_a_timeout_after_losing_the_leader_without_a_new_one_is_plain(
    server: EtcdServer,
) -> None:
    server.loop.on_soft_state(OTHER_LEADER, StateType.StateFollower)
    assert await propose_and_fail(server, [0]) == E.REQUEST_TIMEOUT


async def test_a_timeout_after_a_new_leader_was_elected_blames_the_previous_leader(
    server: EtcdServer,
) -> None:
    server.loop.on_soft_state(OTHER_LEADER, StateType.StateFollower)
    assert await propose_and_fail(server, [0, NEWER_LEADER]) == E.TIMEOUT_LEADER_FAIL


async def test_the_same_leader_re_elected_during_the_request_also_blames_leader_failure(
    server: EtcdServer,
) -> None:
    # the old code compared the leader id at start and end, and called this a plain timeout
    server.loop.on_soft_state(OTHER_LEADER, StateType.StateFollower)
    assert await propose_and_fail(server, [0, OTHER_LEADER]) == E.TIMEOUT_LEADER_FAIL


async def test_a_leader_elected_before_the_request_started_is_not_blamed(
    server: EtcdServer,
) -> None:
    server.loop.on_soft_state(0, StateType.StateFollower)
    server.loop.on_soft_state(NEWER_LEADER, StateType.StateFollower)
    await asyncio.sleep(0.01)
    assert await propose_and_fail(server, []) == E.REQUEST_TIMEOUT


def test_errors_module_has_both_of_etcds_timeout_messages() -> None:
    assert E.REQUEST_TIMEOUT == "etcdserver: request timed out"
    assert E.TIMEOUT_LEADER_FAIL == (
        "etcdserver: request timed out, possibly due to previous leader failure"
    )
