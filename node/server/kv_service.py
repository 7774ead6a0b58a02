"""The KV service behind the gateway: what etcd's EtcdServer does for each client call.

Writes are proposed through Raft (after the quota check) and answered once
applied here; reads are linearizable by default (ReadIndex, then served from
the local store) and served immediately when `serializable` is set. Leases'
keep-alive and time-to-live live on the leader, as in etcd, so a follower
forwards those calls to the leader's client URL.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from node import errors as E
from node.config import ETCD_VERSION
from node.fairness import TurnShare
from node.mvcc import quota
from node.mvcc import requests as rq
from node.mvcc.lease import LeaseIDGenerator
from node.mvcc.txn import validate_request
from node.server.snapshot_stream import stream_snapshot
from node.server.watch_bridge import WatchBridge
from node.transport.peerclient import ForwardFailed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from node.server.server import EtcdServer


R = TypeVar("R")


class _LeaderUnreachable(Exception):
    """A forwarded call found no leader at the other end: try the next leader."""


# The leader's answers that mean "ask the next leader" (etcd retries every answer but
# a final one; these are the ones a member that lost or never had leadership gives).
_RETRY_TEXT = re.compile(
    "|".join(
        re.escape(cls.message)
        for cls in (E.ErrNoLeader, E.ErrNotLeader, E.ErrLeaderChanged, E.ErrStopped)
    )
)


def _forwarded_answer(text: str) -> dict[str, Any]:
    """The leader's JSON answer, or the etcd error it answered with, raised here."""
    data: Any = json.loads(text.splitlines()[0]) if text.strip() else {}
    if isinstance(data, dict) and "error" in data and "code" in data:
        raise E.etcd_error(str(data["message"]))
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        raise E.etcd_error(str(err.get("message")))
    return data if isinstance(data, dict) else {}


LARGE_RANGE_LIMIT = 1000  # above this many keys (or no limit) a range may be large


def _may_be_large(req: rq.RangeRequest) -> bool:
    """A key range (not one key) without a small limit and not count_only, or any read
    at a past revision: schema 2 keeps no index by key, so such a read undoes every row
    written since that revision (node/mvcc/kv.py), a cost that grows with the history
    kept (until a compaction), not with the answer."""
    if req.revision > 0:
        return True
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


@dataclass(slots=True)
class StatusInfo:
    """etcd's StatusResponse, less its header (revision is the header's)."""

    revision: int
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: list[str]
    db_size_in_use: int


@dataclass(slots=True)
class MemberInfo:
    """etcd's Member: an unstarted member has no name and no client URLs."""

    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    is_learner: bool = False


class KVService:
    """etcd's client API on top of one member's server."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self.kv = server.kv
        self.max_request_bytes = server.cfg.max_request_bytes
        self._member_id = str(server.member_id)
        self._cluster_id = str(server.cluster_id)
        self._lease_ids = LeaseIDGenerator(server.member_id, time.time_ns() // 1_000_000)
        # Large ranges read here, two at a time: more would only share the same cores.
        self._reads = concurrent.futures.ThreadPoolExecutor(2, "range-read")
        # Client stream and encoding work takes slices of each loop turn from this share.
        self.client_share = TurnShare()

    async def close(self) -> None:
        self._reads.shutdown(wait=True, cancel_futures=True)

    # ---- response header ------------------------------------------------------------
    def header(self, revision: int | None = None) -> dict[str, str]:
        rev = self.kv.current_revision() if not revision else revision
        return {
            "cluster_id": self._cluster_id,
            "member_id": self._member_id,
            "revision": str(rev),
            "raft_term": str(self.server.term),
        }

    async def _proposed(self, req: Any, answer: type[R]) -> R:
        """Replicate `req` through Raft; the state machine's `answer` to it."""
        resp = await self.server.propose(req)
        return cast("R", resp)

    # ---- KV ---------------------------------------------------------------------------
    def _validate(self, req: Any) -> None:
        """etcd's checks before proposing: empty key, too many ops, duplicate keys, ..."""
        try:
            validate_request(req, self.server.cfg.max_txn_ops)
        except Exception as err:
            raise E.from_exception(err) from None

    def _check_quota(self, req: Any) -> None:
        # etcd's backendQuota.Available, against the size measured after the last apply
        # batch (cheap per request; the store's own check runs PRAGMAs every time)
        if (
            quota.gated(req)
            and self.server.applier.db_size + quota.cost(req) >= self.kv.quota_bytes
        ):
            self.server.raise_nospace_alarm()
            raise E.etcd_error(E.NO_SPACE)

    async def put(self, req: rq.PutRequest) -> rq.PutResponse:
        self.refuse_on_learner()
        self._validate(req)
        self._check_quota(req)
        return await self._proposed(req, rq.PutResponse)

    async def range(self, req: rq.RangeRequest) -> rq.RangeResponse:
        self.refuse_on_learner(serializable_read=req.serializable)
        self._validate(req)
        if not req.serializable:
            await self.server.read_barrier()
        if not _may_be_large(req):
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
        self.refuse_on_learner()
        self._validate(req)
        return await self._proposed(req, rq.DeleteRangeResponse)

    async def txn(self, req: rq.TxnRequest) -> rq.TxnResponse:
        self.refuse_on_learner()
        self._validate(req)
        if _is_read_only(req.success) and _is_read_only(req.failure):
            await self.server.read_barrier()
            return self.kv.txn_read(req)
        self._check_quota(req)
        return await self._proposed(req, rq.TxnResponse)

    async def compact(self, req: rq.CompactionRequest) -> rq.CompactionResponse:
        self.refuse_on_learner()
        return await self._proposed(req, rq.CompactionResponse)

    # ---- leases -------------------------------------------------------------------------
    async def lease_grant(self, req: rq.LeaseGrantRequest) -> rq.LeaseGrantResponse:
        self.refuse_on_learner()
        if req.id == 0:
            req.id = self._lease_ids.next()
        self._check_quota(req)
        return await self._proposed(req, rq.LeaseGrantResponse)

    async def lease_revoke(self, req: rq.LeaseRevokeRequest) -> rq.LeaseRevokeResponse:
        self.refuse_on_learner()
        return await self._proposed(req, rq.LeaseRevokeResponse)

    async def lease_keepalive(self, req: rq.LeaseKeepAliveRequest) -> rq.LeaseKeepAliveResponse:
        self.refuse_on_learner()
        deadline = self._deadline()
        while True:
            if self.server.is_leader:
                resp = self.server.lessor.keepalive_response(req.id, time.monotonic())
                if resp.ttl:
                    self.server.observer.on_lease_renewed()
                return resp
            body = await self._forward("/v3/lease/keepalive", {"ID": str(req.id)}, deadline)
            if body is None:
                continue  # this member leads now: renewed here
            result = body.get("result", body)
            return rq.LeaseKeepAliveResponse(
                revision=self.kv.current_revision(),
                id=int(result.get("ID", req.id)),
                ttl=int(result.get("TTL", 0)),
            )

    async def lease_time_to_live(
        self, req: rq.LeaseTimeToLiveRequest
    ) -> rq.LeaseTimeToLiveResponse:
        self.refuse_on_learner()
        deadline = self._deadline()
        while True:
            if self.server.is_leader:
                return self.server.lessor.time_to_live(req.id, time.monotonic(), req.keys)
            body = await self._forward(
                "/v3/lease/timetolive", {"ID": str(req.id), "keys": req.keys}, deadline
            )
            if body is None:
                continue  # this member leads now: answered here
            return rq.LeaseTimeToLiveResponse(
                revision=self.kv.current_revision(),
                id=int(body.get("ID", req.id)),
                ttl=int(body.get("TTL", -1)),
                granted_ttl=int(body.get("grantedTTL", 0)),
                keys=[base64.b64decode(k) for k in body.get("keys", [])],  # the leader's encoding
            )

    async def lease_leases(self) -> rq.LeaseLeasesResponse:
        self.refuse_on_learner()
        await self.server.read_barrier()
        return self.server.lessor.leases()

    def _deadline(self) -> float:
        """When a call bound for the leader gives up (the event loop's clock): etcd's
        request timeout from now."""
        return asyncio.get_running_loop().time() + self.server.cfg.request_timeout_seconds

    async def _forward(
        self, path: str, body: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        """Send a leader-only call to the leader's client URL; its answer, or None when
        this member became the leader meanwhile (the caller serves the call itself).

        As etcd's LeaseRenew, leaseTimeToLive and PromoteMember: wait for a leader
        ("no leader" if none is known by `deadline`), send, and while the leader cannot
        be reached, is gone or answers that it no longer leads, wait for the next one
        and send again, until "request timed out" at `deadline`. A call in flight to a
        leader that this member stops following is abandoned and sent to the new one.
        """
        server = self.server
        loop = asyncio.get_running_loop()
        tick = server.cfg.tick_seconds
        while True:
            lead = await server.wait_leader(deadline)
            if lead == server.member_id:
                if server.is_leader:
                    return None
            else:
                with contextlib.suppress(_LeaderUnreachable):
                    text = await self._while_leader(lead, self._send(lead, path, body), deadline)
                    return _forwarded_answer(text)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise E.ErrTimeout()
            await asyncio.sleep(min(tick, remaining))

    async def _send(self, lead: int, path: str, body: dict[str, Any]) -> str:
        """One try: POST the call to `lead`'s client URL; the answer's text."""
        try:
            urls = await self.server.client_urls_of(lead)
        except Exception:  # its peer URL did not answer: it may be gone
            raise _LeaderUnreachable() from None
        if not urls:
            raise _LeaderUnreachable()
        try:
            text = await self.server.transport.client.forward(urls[0], path, body)
        except ForwardFailed:
            raise _LeaderUnreachable() from None
        if _RETRY_TEXT.search(text):  # a member that stopped leading, or knows no leader
            raise _LeaderUnreachable()
        return text

    async def _while_leader(self, lead: int, work: Awaitable[str], deadline: float) -> str:
        """`work`'s result, abandoned (_LeaderUnreachable) once this member follows
        another leader than `lead` or none, or at `deadline` (ErrTimeout)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise E.ErrTimeout()
                done, _ = await asyncio.wait(
                    {task}, timeout=min(self.server.cfg.tick_seconds, remaining)
                )
                if done:
                    return task.result()
                if self.server.lead != lead:
                    raise _LeaderUnreachable()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ---- watch ----------------------------------------------------------------------------
    def open_watch_stream(self) -> WatchBridge:
        self.refuse_on_learner()
        return WatchBridge(self.kv.watch_hub)

    # ---- maintenance and cluster -------------------------------------------------------
    async def status(self) -> StatusInfo:
        st = self.server.status()
        errors = [f"memberID:{m} alarm:{name} " for m, name in self.kv.alarms()]
        if not self.server.lead:  # etcd's Status names a missing leader first, then alarms
            errors.insert(0, E.ErrNoLeader.message)
        return StatusInfo(
            revision=self.kv.current_revision(),
            version=ETCD_VERSION,
            db_size=self.kv.db_total_size(),
            leader=self.server.lead,
            raft_index=st.commit,
            raft_term=st.term,
            raft_applied_index=self.server.applied_index,
            errors=errors,
            db_size_in_use=self.kv.db_in_use_size(),
        )

    async def alarm(self, req: rq.AlarmRequest) -> rq.AlarmResponse:
        self.refuse_on_learner()
        # etcd proposes every Alarm request, GET included: a list is linearizable, takes
        # one Raft entry and needs a quorum, and the apply filters it by alarm type.
        return await self._proposed(req, rq.AlarmResponse)

    async def defragment(self) -> None:
        self.refuse_on_learner()
        await self.server.defragment()

    async def transfer_leadership(self, target: int) -> None:
        self.refuse_on_learner()
        if target not in self.server.status().conf_state.voters:
            raise E.etcd_error(E.BAD_LEADER_TRANSFEREE)
        if not self.server.is_leader:
            raise E.etcd_error(E.NOT_LEADER)
        if target == self.server.member_id:
            return
        self.server.transfer_leadership(target)
        deadline = time.monotonic() + self.server.cfg.request_timeout_seconds
        while time.monotonic() < deadline:
            if self.server.lead == target:
                return
            await asyncio.sleep(self.server.cfg.tick_seconds)
        raise E.etcd_error(E.REQUEST_TIMEOUT)

    def snapshot(self) -> AsyncIterator[rq.SnapshotChunk]:
        """Maintenance.Snapshot: the database in 32 KiB blobs, then its sha256 (etcd 3.4).

        Served by any member from its own store, without Raft, as etcd serves it.
        """
        self.refuse_on_learner()
        return stream_snapshot(self.kv, self.server.cfg.member_dir)

    async def hash(self) -> rq.HashResponse:
        """etcd's Maintenance.Hash: the whole store (no read barrier, as etcd)."""
        self.refuse_on_learner()
        return await self.server.hash()

    async def hash_kv(self, revision: int) -> rq.HashKVResponse:
        """etcd's Maintenance.HashKV: the key history up to `revision` (0 = current).

        ErrCompacted at or below the compact revision, ErrFutureRev above the current.
        """
        self.refuse_on_learner()
        return await self.server.hash_kv(revision)

    async def member_list(self) -> list[MemberInfo]:
        """Every member, learners and unstarted ones included, as applied here.

        A started member whose client URLs were not published yet (a data dir from
        before publishing) is asked for them over its peer URL.
        """
        self.refuse_on_learner()
        members = []
        for m in self.server.membership.sorted():
            urls = list(m.client_urls)
            if m.name and not urls:
                with contextlib.suppress(Exception):
                    urls = await self.server.client_urls_of(m.id)
            members.append(MemberInfo(m.id, m.name, list(m.peer_urls), urls, m.is_learner))
        if not members:  # nothing applied yet (the first moments of a new cluster)
            members = [
                MemberInfo(spec.member_id, spec.name, list(spec.peer_urls), [])
                for spec in self.server.cfg.members
            ]
        return members

    async def member_add(self, peer_urls: list[str], is_learner: bool) -> MemberInfo:
        """etcd's MemberAdd: the new member, unstarted until it runs and publishes."""
        self.refuse_on_learner()
        added = await self.server.reconfig.add(peer_urls, is_learner)
        return MemberInfo(added.id, added.name, list(added.peer_urls), [], added.is_learner)

    async def member_remove(self, member_id: int) -> None:
        self.refuse_on_learner()
        await self.server.reconfig.remove(member_id)

    async def member_update(self, member_id: int, peer_urls: list[str]) -> None:
        self.refuse_on_learner()
        await self.server.reconfig.update(member_id, peer_urls)

    async def member_promote(self, member_id: int) -> None:
        """etcd's MemberPromote: only the leader knows whether the learner caught up, so
        a follower forwards the call to it, then waits until it applied the promotion
        itself: a member list asked of this member next shows the promoted member."""
        self.refuse_on_learner()
        deadline = self._deadline()
        while not self.server.is_leader:
            path = "/v3/cluster/member/promote"
            if await self._forward(path, {"ID": str(member_id)}, deadline) is not None:
                await self._catch_up_with_leader(deadline)
                return
        progress = {peer: p[0] for peer, p in self.server.status().progress.items()}
        await self.server.reconfig.promote(member_id, progress)

    async def _catch_up_with_leader(self, deadline: float) -> None:
        """Wait (until `deadline`) to apply what the leader committed. The change is
        made whether or not this member catches up in time, so its answer stands."""
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        with contextlib.suppress(asyncio.TimeoutError, E.EtcdError):
            await asyncio.wait_for(self.server.read_barrier(), remaining)

    def refuse_on_learner(self, *, serializable_read: bool = False) -> None:
        """etcd 3.4 serves a learner's clients Status, serializable ranges and the member
        list only: everything else needs a voter."""
        if not serializable_read and self.server.is_learner:
            raise E.ErrNotSupportedForLearner()
