"""Apply: committed entries into the store, their results to the waiting clients.

Entries are applied into the backend's open SQLite batch on the loop thread, after
they are durable here (the Ready loop's order). Each result answers its proposal;
the batch's time is reported once, and shared out per request under etcd's `op`.
The reports wait for `observe`, which the Ready loop calls once the answers have left:
the histograms are not on a client's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from node.mvcc import requests as rq
from node.raft import EntryType

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.mvcc.store import ApplyResult
    from node.raft.messages import Entry
    from node.server.context import ServerContext
    from node.server.proposals import Proposals

log = logging.getLogger(__name__)

SLOW_APPLY_SECONDS = 0.1  # etcd warns and counts applies slower than this

# The `op` of etcd_server_apply_duration_seconds, by the applied request's type; keyed on
# the request, not the response, so an apply that failed (no response) keeps its op.
_APPLY_OPS: dict[type, str] = {
    rq.PutRequest: "Put",
    rq.RangeRequest: "Range",
    rq.DeleteRangeRequest: "DeleteRange",
    rq.TxnRequest: "Txn",
    rq.CompactionRequest: "Compaction",
    rq.LeaseGrantRequest: "LeaseGrant",
    rq.LeaseRevokeRequest: "LeaseRevoke",
    rq.AlarmRequest: "Alarm",
}


class Applier:
    """Applies committed entries and keeps the applied index and the quota's db size."""

    def __init__(self, ctx: ServerContext, proposals: Proposals) -> None:
        self._kv = kv = ctx.opened.kv
        self._proposals = proposals
        self._counters = ctx.counters
        self._lessor = ctx.lessor
        self._observer = ctx.observer
        # Invariant: applied_index <= the core's commit index.
        self.applied_index = ctx.opened.applied_index
        # The quota check's database size, re-read after each backend commit (as etcd's
        # backend.Size(), updated when bbolt commits), not after every apply batch: a PRAGMA
        # and a stat cost about 50 µs, a quarter of an apply of one put.
        self.db_size = kv.db_total_size()
        self._db_size_commits = kv.commits
        # Membership: conf-change entries, and members' published attributes once applied.
        self.on_conf_change: Callable[[Entry], None] | None = None
        self.on_member_attributes: Callable[[rq.MemberAttrRequest], None] | None = None
        # Committed entries held back while a defragment holds the store (they are
        # durable in the WAL); applied in order by `resume`, before any newer ones.
        self._deferred: list[Entry] = []
        # Set while a snapshot's FULL checkpoint holds the store's writers: entries wait
        # in `_deferred` as during a defragment (snapshots.py).
        self.held = False
        # Applies not yet reported: (each batch's results and seconds), each apply's seconds.
        self._unobserved_batches: list[tuple[list[ApplyResult], float]] = []
        self._unobserved_applies: list[float] = []
        # Entries answered before their apply (`answer_ahead`): index -> revision answered.
        self._answered_ahead: dict[int, int] = {}

    def refresh_db_size(self) -> None:
        """Re-read the database size if the backend committed since it was last read."""
        kv = self._kv
        if kv.commits != self._db_size_commits and not kv.defragmenting:
            self._db_size_commits = kv.commits
            self.db_size = kv.db_total_size()

    def reset(self, applied_index: int) -> None:
        """The store was replaced (a snapshot installed) or rewritten (defragmented)."""
        self.applied_index = applied_index
        self.db_size = self._kv.db_total_size()

    @property
    def deferred(self) -> int:
        """Committed entries waiting for a defragment to end."""
        return len(self._deferred)

    def answer_ahead(self, committed: list[Entry]) -> bool:
        """Answer this member's clients whose entries are plain puts, before applying them.

        On a leader the apply of a put (about 50 µs) sat between the commit and the
        client's answer. A committed entry is durable (a majority fsynced it), and a
        plain put cannot fail on apply (`KVStore.answers_ahead`), so its answer is
        known: the Ready loop sends it, then applies. Only when every entry of the
        batch is one, nothing is deferred (defragment, snapshot hold), and at least one
        of them has a client waiting here. `apply` checks it produced these results.

        No request sent after an answer can see the store without its put: the
        answered handlers and the Ready loop's own continuation (its `sleep(0)`) are
        queued on the event loop together, in that order, and run in one batch of
        callbacks, before the loop polls its sockets again. Linearizable reads also
        wait for the applied index, which moves only at the apply.
        """
        if self._kv.defragmenting or self.held or self._deferred:
            return False
        batch: list[tuple[int, bytes]] = []
        for e in committed:
            if e.index <= self.applied_index:
                continue
            if e.type != EntryType.EntryNormal:
                return False
            batch.append((e.index, e.data))
        waiters = self._proposals.waiters
        results = self._kv.answers_ahead(batch)
        if not results or not any(r.request_id in waiters for r in results):
            return False
        self._answered_ahead = {r.index: r.response.revision for r in results}
        self._proposals.resolve(results)
        return True

    def apply(self, committed: list[Entry]) -> None:
        """Apply one Ready's committed entries (those not applied yet) and answer clients.

        Normal entries go to the store in batches; a conf-change entry is applied alone,
        in log order, after the entries before it.

        While the store is defragmented (a worker thread holds it for the whole VACUUM)
        the entries wait in order instead, so the Ready loop never blocks on the store:
        heartbeats, WAL fsyncs and acks go on, and the answers come after `resume`.
        """
        if self._kv.defragmenting or self.held:
            self._deferred.extend(committed)
            return
        if self._deferred:  # `resume` did not finish (or was cancelled): keep the order
            committed, self._deferred = self._deferred + committed, []
        self._apply_now(committed)

    async def resume(self, chunk: int = 1000) -> None:
        """Apply the entries held back during a defragment, `chunk` at a time, yielding."""
        while self._deferred and not self._kv.defragmenting and not self.held:
            batch, self._deferred = self._deferred[:chunk], self._deferred[chunk:]
            self._apply_now(batch)
            self.observe()
            await asyncio.sleep(0)

    def _apply_now(self, committed: list[Entry]) -> None:
        started = time.perf_counter()
        batch: list[tuple[int, bytes]] = []
        for e in committed:
            if e.index <= self.applied_index:
                continue
            if e.type == EntryType.EntryConfChange and self.on_conf_change is not None:
                self._apply_batch(batch, started)
                batch = []
                self.on_conf_change(e)
                self.applied_index = e.index
                continue
            batch.append((e.index, e.data))
        self._apply_batch(batch, started)
        if committed:
            self.applied_index = max(self.applied_index, committed[-1].index)
        took = time.perf_counter() - started
        self._counters.apply_seconds_total += took
        if took > SLOW_APPLY_SECONDS:
            self._counters.slow_applies += 1
            log.warning(
                "apply request took too long",
                extra={"fields": {"took": f"{took:.3f}s", "entries": len(batch)}},
            )
        self._unobserved_applies.append(took)

    def observe(self) -> None:
        """Report the applies since the last call (etcd_server_apply_duration_seconds, the
        lease gauges, the apply histogram); the Ready loop calls it after the answers left."""
        batches, self._unobserved_batches = self._unobserved_batches, []
        for results, seconds in batches:
            self._observe_applied(results, seconds)
        applies, self._unobserved_applies = self._unobserved_applies, []
        for took in applies:
            self._observer.on_apply(took)

    def _apply_batch(self, batch: list[tuple[int, bytes]], started: float) -> None:
        if not batch:
            return
        results = self._kv.apply_batch(batch)
        if self._answered_ahead:
            self._check_answered_ahead(results)
        self._proposals.resolve(results)
        self.applied_index = batch[-1][0]
        self.refresh_db_size()
        if results:
            self._unobserved_batches.append((results, time.perf_counter() - started))
            if any(type(r.request) is rq.LeaseGrantRequest for r in results):
                self._lessor.start_deadlines(time.monotonic())  # its TTL runs from now
            if self.on_member_attributes is not None:
                for result in results:
                    if type(result.request) is rq.MemberAttrRequest and result.error is None:
                        self.on_member_attributes(result.request)

    def _check_answered_ahead(self, results: list[ApplyResult]) -> None:
        """The apply of entries answered ahead must have produced those answers."""
        ahead = self._answered_ahead
        for result in results:
            revision = ahead.pop(result.index, None)
            if revision is None:
                continue
            got = result.response.revision if result.error is None else None
            if got != revision:
                self._counters.answers_ahead_wrong += 1
                log.error(
                    "an entry answered before its apply was applied differently",
                    extra={"fields": {"index": result.index, "answered": revision, "applied": got}},
                )

    def _observe_applied(self, results: list[ApplyResult], seconds: float) -> None:
        """Per-request apply durations (the batch's time shared out) and lease events."""
        each = seconds / len(results)
        observer = self._observer
        for result in results:
            op = _APPLY_OPS.get(type(result.request))
            if op is None:  # an undecodable entry: nothing etcd would time
                continue
            ok = result.error is None
            observer.on_apply_request(op, ok, each)  # success="false" when it failed
            if not ok:
                continue
            if op == "LeaseGrant":
                observer.on_lease_granted(float(result.response.ttl))
            elif op == "LeaseRevoke":
                observer.on_lease_revoked()
