"""The KV service behind the gateway: what etcd's EtcdServer does for each client call.

Writes are proposed through Raft (after the quota check) and answered once
applied here; reads are linearizable by default (ReadIndex, then served from
the local store) and served immediately when `serializable` is set. Leases'
keep-alive and time-to-live live on the leader, as in etcd, so a follower
forwards those calls to the leader's client URL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from node import errors as E
from node.config import ETCD_VERSION
from node.fairness import TurnShare
from node.mvcc import quota
from node.mvcc import requests as rq
from node.mvcc.lease import LeaseIDGenerator
from node.mvcc.txn import validate_request
from node.tls import any_https, client_context

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from node.driver import RaftDriver


LARGE_RANGE_LIMIT = 1000  # above this many keys (or no limit) a range may be large


def _may_be_large(req: rq.RangeRequest) -> bool:
    """A key range (not one key) without a small limit, and not count_only."""
    return (
        bool(req.range_end)
        and not req.count_only
        and (req.limit <= 0 or req.limit > LARGE_RANGE_LIMIT)
    )


def _is_read_only(ops: list[rq.RequestOp]) -> bool:
    for op in ops:
        if isinstance(op, (rq.PutRequest, rq.DeleteRangeRequest)):
            return False
        if isinstance(op, rq.TxnRequest) and not (
            _is_read_only(op.success) and _is_read_only(op.failure)
        ):
            return False
    return True


class WatchBridge:
    """One gateway watch stream: the store's WatchStream, woken on the event loop."""

    def __init__(self, driver: RaftDriver) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._closed = False

        def on_ready() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._stream = driver.kv.watch_hub.new_stream(on_ready=on_ready)
        self._driver = driver

    def create(self, req: rq.WatchCreateRequest) -> None:
        self._stream.watch(req)
        self._wake.set()

    def cancel(self, watch_id: int) -> None:
        self._stream.cancel(watch_id)
        self._wake.set()

    def progress(self) -> None:
        self._stream.request_progress()
        self._wake.set()

    async def results(self) -> AsyncIterator[rq.WatchResponse]:
        while not self._closed:
            with self._driver.kv_lock():
                batch = self._stream.poll()
            if batch:
                for resp in batch:
                    yield resp
                continue
            if self._stream.ready:
                continue
            self._wake.clear()
            if self._stream.ready:
                continue
            await self._wake.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.close()
            self._wake.set()


class KVService:
    """etcd's client API on top of one member's driver."""

    def __init__(self, driver: RaftDriver) -> None:
        self.driver = driver
        self.kv = driver.kv
        self.max_request_bytes = driver.cfg.max_request_bytes
        self._member_id = str(driver.member_id)
        self._cluster_id = str(driver.cluster_id)
        self._lease_ids = LeaseIDGenerator(driver.member_id, time.time_ns() // 1_000_000)
        self._session: aiohttp.ClientSession | None = None
        # Large ranges read here, two at a time: more would only share the same cores.
        self._reads = concurrent.futures.ThreadPoolExecutor(2, "range-read")
        # Client stream and encoding work takes slices of each loop turn from this share.
        self.client_share = TurnShare()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._reads.shutdown(wait=True, cancel_futures=True)

    # ---- response header ------------------------------------------------------------
    def header(self, revision: int | None = None) -> dict[str, str]:
        rev = self.kv.current_revision() if not revision else revision
        return {
            "cluster_id": self._cluster_id,
            "member_id": self._member_id,
            "revision": str(rev),
            "raft_term": str(self.driver.term),
        }

    # ---- KV ---------------------------------------------------------------------------
    def _validate(self, req: Any) -> None:
        """etcd's checks before proposing: empty key, too many ops, duplicate keys, ..."""
        try:
            validate_request(req, self.driver.cfg.max_txn_ops)
        except Exception as err:
            raise E.from_exception(err) from None

    def _check_quota(self, req: Any) -> None:
        # etcd's backendQuota.Available, against the size measured after the last apply
        # batch (cheap per request; the store's own check runs PRAGMAs every time)
        if quota.gated(req) and self.driver.db_size + quota.cost(req) >= self.kv.quota_bytes:
            self.driver.raise_nospace_alarm()
            raise E.etcd_error(E.NO_SPACE)

    async def put(self, req: rq.PutRequest) -> rq.PutResponse:
        self._validate(req)
        self._check_quota(req)
        resp: rq.PutResponse = await self.driver.propose(req)
        return resp

    async def range(self, req: rq.RangeRequest) -> rq.RangeResponse:
        self._validate(req)
        if not req.serializable:
            await self.driver.read_barrier()
        if not _may_be_large(req):
            with self.driver.kv_lock():
                return self.kv.range(req)
        # A range that may be large reads in a worker thread, from a snapshot that holds
        # everything applied so far (the open batch is committed first; SQLite releases
        # the GIL while it reads), so the loop keeps serving heartbeats and clients.
        # Linearizable or serializable exactly as above: the snapshot is taken after the
        # read barrier, at the applied state.
        self.kv.commit()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, self.kv.range_snapshot, req)

    async def delete_range(self, req: rq.DeleteRangeRequest) -> rq.DeleteRangeResponse:
        self._validate(req)
        resp: rq.DeleteRangeResponse = await self.driver.propose(req)
        return resp

    async def txn(self, req: rq.TxnRequest) -> rq.TxnResponse:
        self._validate(req)
        if _is_read_only(req.success) and _is_read_only(req.failure):
            await self.driver.read_barrier()
            with self.driver.kv_lock():
                return self.kv.txn_read(req)
        self._check_quota(req)
        resp: rq.TxnResponse = await self.driver.propose(req)
        return resp

    async def compact(self, req: rq.CompactionRequest) -> rq.CompactionResponse:
        resp: rq.CompactionResponse = await self.driver.propose(req)
        return resp

    # ---- leases -------------------------------------------------------------------------
    async def lease_grant(self, req: rq.LeaseGrantRequest) -> rq.LeaseGrantResponse:
        if req.id == 0:
            req.id = self._lease_ids.next()
        self._check_quota(req)
        resp: rq.LeaseGrantResponse = await self.driver.propose(req)
        return resp

    async def lease_revoke(self, req: rq.LeaseRevokeRequest) -> rq.LeaseRevokeResponse:
        resp: rq.LeaseRevokeResponse = await self.driver.propose(req)
        return resp

    async def lease_keepalive(self, req: rq.LeaseKeepAliveRequest) -> rq.LeaseKeepAliveResponse:
        if self.driver.is_leader:
            resp = self.driver.lessor.keepalive_response(req.id, time.monotonic())
            if resp.ttl and self.driver.observer is not None:
                self.driver.observer.on_lease_renewed()
            return resp
        body = await self._forward("/v3/lease/keepalive", {"ID": str(req.id)})
        result = body.get("result", body)
        return rq.LeaseKeepAliveResponse(
            revision=self.kv.current_revision(),
            id=int(result.get("ID", req.id)),
            ttl=int(result.get("TTL", 0)),
        )

    async def lease_time_to_live(
        self, req: rq.LeaseTimeToLiveRequest
    ) -> rq.LeaseTimeToLiveResponse:
        if self.driver.is_leader:
            return self.driver.lessor.time_to_live(req.id, time.monotonic(), req.keys)
        body = await self._forward("/v3/lease/timetolive", {"ID": str(req.id), "keys": req.keys})
        from node.api.codec import b64decode

        return rq.LeaseTimeToLiveResponse(
            revision=self.kv.current_revision(),
            id=int(body.get("ID", req.id)),
            ttl=int(body.get("TTL", -1)),
            granted_ttl=int(body.get("grantedTTL", 0)),
            keys=[b64decode(k) for k in body.get("keys", [])],
        )

    async def lease_leases(self) -> rq.LeaseLeasesResponse:
        await self.driver.read_barrier()
        return self.driver.lessor.leases()

    async def _forward(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a leader-only call to the leader's client URL; answer etcd's errors."""
        url = await self.driver.leader_client_url()
        if url is None:
            raise E.etcd_error(E.NO_LEADER)
        if self._session is None:
            # etcd's own gateway dials its client URLs with --cert-file as the client
            # certificate; the leader's https URL is verified against --trusted-ca-file.
            cfg = self.driver.cfg
            https = any_https(cfg.advertise_client_urls) or not cfg.client_tls.empty
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=5),
                connector=aiohttp.TCPConnector(
                    ssl=client_context(cfg.client_tls) if https else True
                ),
            )
        try:
            async with self._session.post(url + path, json=body) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            raise E.etcd_error(E.REQUEST_TIMEOUT) from None
        import json

        data: Any = json.loads(text.splitlines()[0]) if text.strip() else {}
        if isinstance(data, dict) and "error" in data and "code" in data:
            raise E.etcd_error(str(data["message"]))
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            raise E.etcd_error(str(err.get("message")))
        return data if isinstance(data, dict) else {}

    # ---- watch ----------------------------------------------------------------------------
    def open_watch_stream(self) -> WatchBridge:
        return WatchBridge(self.driver)

    # ---- maintenance and cluster -------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        st = self.driver.node.status()
        out: dict[str, Any] = {
            "header": self.header(),
            "version": ETCD_VERSION,
            "dbSize": str(self.kv.db_total_size()),
            "leader": str(self.driver.lead),
            "raftIndex": str(st.commit),
            "raftTerm": str(st.term),
            "raftAppliedIndex": str(self.driver.applied_index),
            "dbSizeInUse": str(self.kv.db_in_use_size()),
        }
        alarms = self.kv.alarms()
        if alarms:
            out["errors"] = [f"memberID:{m} alarm:{name} " for m, name in alarms]
        return out

    async def alarm(self, req: rq.AlarmRequest) -> rq.AlarmResponse:
        if req.action == rq.AlarmAction.GET:
            return rq.AlarmResponse(
                revision=self.kv.current_revision(), alarms=self.kv.alarm_members()
            )
        resp: rq.AlarmResponse = await self.driver.propose(req)
        return resp

    async def defragment(self) -> None:
        await self.driver.defragment()

    async def transfer_leadership(self, target: int) -> None:
        if target not in {m.member_id for m in self.driver.cfg.members}:
            raise E.etcd_error(E.BAD_LEADER_TRANSFEREE)
        if not self.driver.is_leader:
            raise E.etcd_error(E.NOT_LEADER)
        if target == self.driver.member_id:
            return
        self.driver.transfer_leadership(target)
        deadline = time.monotonic() + self.driver.cfg.request_timeout_seconds
        while time.monotonic() < deadline:
            if self.driver.lead == target:
                return
            await asyncio.sleep(self.driver.cfg.tick_seconds)
        raise E.etcd_error(E.REQUEST_TIMEOUT)

    async def hash_kv(self, revision: int) -> dict[str, Any]:
        raise E.ErrUnimplemented("HashKV is not supported by raftmon")

    async def member_list(self) -> dict[str, Any]:
        members = []
        for spec in self.driver.cfg.members:
            entry: dict[str, Any] = {
                "ID": str(spec.member_id),
                "name": spec.name,
                "peerURLs": list(spec.peer_urls),
            }
            with contextlib.suppress(Exception):
                urls = await self.driver.client_urls_of(spec.member_id)
                if urls:
                    entry["clientURLs"] = urls
            members.append(entry)
        header = self.header()
        header.pop("revision")
        return {"header": header, "members": members}
