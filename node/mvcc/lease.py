"""Lease deadlines and the leader's expiry decisions (etcd 3.4 lease/lessor.go).

What is replicated and what is not, as in etcd:
- Replicated (applied by KVStore through Raft): grant (id, ttl), revoke (which
  deletes the lease's keys in one revision), and which keys are attached.
- Local to the leader: deadlines. The `Lessor` keeps them in memory from a
  monotonic `now` the caller passes in; nothing here reads a clock. Keep-alives
  move only the leader's deadline (they are not replicated), so on a leader
  change the new leader `promote(now)`s: every lease gets a full TTL from now,
  exactly as etcd refreshes all leases when a member becomes primary.
  Followers (`demote()`) hold no deadlines and never expire anything.
- The leader asks `expired(now)` periodically and proposes a
  LeaseRevokeRequest for each id returned; an id is returned again only after
  `revoke_retry_seconds` (etcd's expiredLeaseRetryInterval) if the revoke has
  not been applied by then, e.g. because the proposal was lost.

A lease granted while this member is primary gets its deadline when the Applier
calls `start_deadlines(now)` right after the apply (apply itself has no clock), or
at the next call that passes a clock (`expired`, `keepalive`, `time_to_live`); the
driver calls `expired` every 500 ms, so a lease lives at most that much longer than
its TTL, never shorter.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

from node.errors import ErrLeaseNotFound, ErrNotLeader
from node.mvcc import requests as rq

if TYPE_CHECKING:
    from node.mvcc.store import KVStore

EXPIRED_RETRY_SECONDS = 3.0  # etcd's expiredLeaseRetryInterval
MAX_REVOKES_PER_CALL = 500  # etcd revokes at most 1000 leases/s, checked every 500 ms
_FOREVER = math.inf


class Lessor:
    """Deadlines of the store's leases; primary only on the leader."""

    def __init__(
        self,
        store: KVStore,
        *,
        revoke_retry_seconds: float = EXPIRED_RETRY_SECONDS,
        max_revokes_per_call: int = MAX_REVOKES_PER_CALL,
    ) -> None:
        self.store = store
        self.primary = False
        self.revoke_retry_seconds = revoke_retry_seconds
        self.max_revokes_per_call = max_revokes_per_call
        # lease id -> deadline (monotonic seconds); None = granted, awaiting a clock
        self._deadline: dict[int, float | None] = {}
        self._heap: list[tuple[float, int]] = []
        # counters for etcd_debugging_lease_{granted,revoked,renewed}_total and
        # etcd_debugging_server_lease_expired_total
        self.granted_total = 0
        self.revoked_total = 0
        self.renewed_total = 0
        self.expired_total = 0
        store.subscribe_leases(self._on_change)
        self.reload()

    # ---- role changes -------------------------------------------------------------------
    def promote(self, now: float) -> None:
        """Became leader: every lease gets a full TTL from now (etcd's Promote)."""
        self.primary = True
        self._heap = []
        for lease_id in self._deadline:
            self._set(lease_id, now + self._ttl(lease_id))

    def demote(self) -> None:
        """Lost leadership: no deadlines, nothing expires here."""
        self.primary = False
        self._heap = []
        for lease_id in self._deadline:
            self._deadline[lease_id] = _FOREVER

    def reload(self) -> None:
        """Rebuild from the store (after open or a snapshot install)."""
        self._heap = []
        self._deadline = dict.fromkeys(self.store.lease_ids(), None if self.primary else _FOREVER)

    # ---- leader decisions ----------------------------------------------------------------
    def expired(self, now: float) -> list[int]:
        """Leases whose deadline passed, for the leader to propose revokes for."""
        if not self.primary:
            return []
        self._resolve(now)
        out: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(out) < self.max_revokes_per_call:
            deadline, lease_id = heapq.heappop(heap)
            if self._deadline.get(lease_id) != deadline:
                continue  # stale entry: renewed, revoked or re-armed since
            out.append(lease_id)
            self._set(lease_id, now + self.revoke_retry_seconds)
        self.expired_total += len(out)
        return out

    def keepalive(self, lease_id: int, now: float) -> int:
        """Renew on the leader; returns the TTL. Unknown or already-expired -> ErrLeaseNotFound."""
        if not self.primary:
            raise ErrNotLeader
        self._resolve(now)
        ttl = self.store.lease_ttl(lease_id)
        if ttl is None or lease_id not in self._deadline:
            raise ErrLeaseNotFound
        deadline = self._deadline[lease_id]
        if deadline is not None and deadline <= now:
            # etcd waits for the pending revoke and then answers "not found"
            raise ErrLeaseNotFound
        self._set(lease_id, now + ttl)
        self.renewed_total += 1
        return ttl

    def keepalive_response(self, lease_id: int, now: float) -> rq.LeaseKeepAliveResponse:
        """The gateway's answer: TTL 0 for an unknown lease (etcd does not error)."""
        try:
            ttl = self.keepalive(lease_id, now)
        except ErrLeaseNotFound:
            ttl = 0
        return rq.LeaseKeepAliveResponse(
            revision=self.store.current_revision(), id=lease_id, ttl=ttl
        )

    def remaining(self, lease_id: int, now: float) -> int:
        """Seconds left, truncated like etcd; -1 unknown. Off the leader: the granted TTL."""
        ttl = self.store.lease_ttl(lease_id)
        if ttl is None:
            return -1
        if self.primary:
            self._resolve(now)
        deadline = self._deadline.get(lease_id)
        if deadline is None or deadline == _FOREVER:
            return ttl
        return max(0, int(deadline - now))

    def time_to_live(
        self, lease_id: int, now: float, keys: bool = False
    ) -> rq.LeaseTimeToLiveResponse:
        """etcd's LeaseTimeToLive: TTL -1 when the lease does not exist."""
        resp = rq.LeaseTimeToLiveResponse(revision=self.store.current_revision(), id=lease_id)
        granted = self.store.lease_ttl(lease_id)
        if granted is None:
            resp.ttl = -1
            return resp
        resp.ttl = self.remaining(lease_id, now)
        resp.granted_ttl = granted
        if keys:
            resp.keys = self.store.lease_keys(lease_id)
        return resp

    def leases(self) -> rq.LeaseLeasesResponse:
        return rq.LeaseLeasesResponse(
            revision=self.store.current_revision(), leases=self.store.lease_ids()
        )

    # ---- internals -------------------------------------------------------------------------
    def _ttl(self, lease_id: int) -> int:
        return self.store.lease_ttl(lease_id) or 0

    def start_deadlines(self, now: float) -> None:
        """Leases just granted get their deadline from `now`, the time of their apply.

        The apply calls this after a batch that granted leases, so a lease lives its
        TTL from its grant, as etcd's (its lessor reads the clock in Grant), not from
        the next expiry check (up to 500 ms later: a 2 s lease lasted about 3 s).
        """
        if self.primary:
            self._resolve(now)

    def _set(self, lease_id: int, deadline: float) -> None:
        self._deadline[lease_id] = deadline
        heapq.heappush(self._heap, (deadline, lease_id))

    def _resolve(self, now: float) -> None:
        """Give leases granted since the last clock reading their first deadline."""
        for lease_id, deadline in self._deadline.items():
            if deadline is None:
                self._set(lease_id, now + self._ttl(lease_id))

    def _on_change(self, granted: list[tuple[int, int]], revoked: list[int]) -> None:
        """Called by the store after a committed batch."""
        for lease_id, _ttl in granted:
            self._deadline[lease_id] = None if self.primary else _FOREVER
        for lease_id in revoked:
            self._deadline.pop(lease_id, None)
        self.granted_total += len(granted)
        self.revoked_total += len(revoked)


class LeaseIDGenerator:
    """Lease ids chosen by the proposing member, like etcd's idutil.Generator.

    The top 16 bits come from the member id, the rest from a millisecond
    timestamp (taken once, passed in) followed by a counter, so ids from
    different members and restarts do not collide. The sign bit is cleared:
    lease ids are positive int64.
    """

    def __init__(self, member_id: int, now_unix_ms: int) -> None:
        self._prefix = (member_id & 0xFFFF) << 48
        self._suffix = (now_unix_ms & ((1 << 40) - 1)) << 8

    def next(self) -> int:
        self._suffix += 1
        return (self._prefix | (self._suffix & ((1 << 48) - 1))) & ((1 << 63) - 1)
