"""Client proposals: encode, queue for the Ready loop, wait for the apply, time out as etcd.

A proposal is encoded here, checked against the request size limits, queued until the
Ready loop hands it to the core (`drain_into`) and answered when its entry is applied
(`resolve`). Nothing is acknowledged before the entry is committed and applied.

While the member knows no leader, a proposal is held, as etcd's raft node holds it
(its proposal channel is closed until a leader is known): it enters the core once a
leader is elected, or fails "request timed out" when its request timeout ends first.
So an election costs clients latency, not errors.

A follower whose stream to its leader is down (the leader was killed, or the link is
being redialled) holds new proposals as well instead of forwarding them: the transport
would drop them, and each would cost its client a request timeout although a new leader
(or the link) is back within an election timeout. Held proposals never left the member,
so handing them to the core later proposes each exactly once. etcd forwards them into
the broken stream and loses them (issue 17's faulted run).

A proposal that did leave (forwarded to a leader that then died before replicating it)
would be lost too. So once a new leader is known, every proposal handed to the core
whose client still waits is sent again, as a retry naming the applied index of its
first send (`codec.encode_retry`). Whether the first copy was lost cannot be known here
(the dead leader may have replicated it; the member it went to may forward it on): the
apply decides, the same way on every member, and applies exactly one copy
(node/mvcc/dedup.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from node import errors as E
from node.mvcc.codec import RETRY_FORMAT, encode_request, encode_retry
from node.raft import ProposalDropped
from node.server.leader_wait import LeaderWait

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from node.mvcc.store import ApplyResult
    from node.raft import RawNode
    from node.server.context import ServerContext

log = logging.getLogger(__name__)

GRPC_OVERHEAD_BYTES = 512 * 1024  # etcd: max gRPC message = --max-request-bytes + 512 KiB
# Held proposals whose clients gave up (timed out) are dropped when the list grows past
# this: an unreachable leader under load must not grow it for as long as it lasts.
HELD_PRUNE_AT = 4096


class RequestIDs:
    """Request ids unique across members and across restarts, as etcd's idutil.Generator.

    An id names the waiter an applied entry answers. After a restart the member replays
    committed entries proposed in its earlier life; were a new request to reuse one of
    their ids, the replay would answer it before its own entry committed. So the top 16
    bits are the member id's low bits and the low 48 start at the start time in
    milliseconds shifted past an 8-bit counter: a restarted member starts above every id
    it issued before unless that life averaged more than 256 requests per millisecond.
    """

    SUFFIX_BITS = 48
    COUNTER_BITS = 8

    def __init__(self, member_id: int, now_ms: int) -> None:
        self._prefix = (member_id & 0xFFFF) << self.SUFFIX_BITS
        time_bits = self.SUFFIX_BITS - self.COUNTER_BITS
        self._suffix = (now_ms & ((1 << time_bits) - 1)) << self.COUNTER_BITS

    def next(self) -> int:
        self._suffix = (self._suffix + 1) & ((1 << self.SUFFIX_BITS) - 1)
        return self._prefix | self._suffix


def expire(fut: asyncio.Future[Any]) -> None:
    """A request's timer fired before its answer: it fails with TimeoutError."""
    if not fut.done():
        fut.set_exception(TimeoutError())


class Proposals:
    """Proposals waiting for the core, and client futures waiting for their apply."""

    def __init__(self, ctx: ServerContext) -> None:
        cfg = ctx.cfg
        self._ctx = ctx
        self._queue: list[tuple[bytes, int]] = []  # (encoded request, request id; 0: none)
        self._held: list[tuple[bytes, int]] = []  # client proposals waiting for a leader
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        # Client proposals handed to the core, until answered: request id -> (the first
        # copy's data, the applied index when it was handed over), to send again.
        self._sent: dict[int, tuple[bytes, int]] = {}
        self.sent_again = 0  # retries sent after a leader change (tests, reports)
        # `cfg.member_id` hashes every member's peer URLs (SHA-1) per call: read it once,
        # not on each proposal's path (py-spy: 4 % of a loaded leader's loop at one client).
        self._member_id = cfg.member_id
        self._ids = RequestIDs(self._member_id, time.time_ns() // 1_000_000)
        self.stopping = False
        self.leader_elected_at = 0.0  # monotonic time a new non-zero leader was last seen
        # Calls bound for the leader (forwarded lease calls, conf changes) wait here for
        # one; woken with the held proposals, looking again every tick meanwhile.
        self.leader_wait = LeaderWait(ctx.leadership, cfg.tick_seconds)
        # Called once after `resolve` woke at least one client, before those clients run:
        # a front end may gather the answers of one wake-up into fewer writes.
        self.answered_listeners: list[Callable[[], None]] = []

    def next_request_id(self) -> int:
        return self._ids.next()

    async def propose(self, request: Any) -> Any:
        """Replicate one request through Raft; return the state machine's response.

        Raises EtcdError: request timed out (after the request timeout, a leader
        known or not), or the error the state machine produced when applying.
        """
        if self.stopping:
            raise E.etcd_error(E.STOPPED)
        ctx = self._ctx
        request_id = self.next_request_id()
        try:
            data = encode_request(request_id, request)
        except Exception as err:  # a value no etcd field can hold (int64 overflow, ...)
            raise E.invalid_argument(f"raftmon: request cannot be encoded: {err}") from None
        max_bytes = ctx.cfg.max_request_bytes
        if len(data) > max_bytes:
            grpc_limit = max_bytes + GRPC_OVERHEAD_BYTES
            if len(data) > grpc_limit:  # etcd's gRPC layer refuses it before the server sees it
                raise E.message_too_large(len(data), grpc_limit)
            raise E.etcd_error(E.REQUEST_TOO_LARGE)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.waiters[request_id] = fut
        if ctx.leadership.lead == 0:
            self._held.append((data, request_id))
        else:
            self._queue.append((data, request_id))
            ctx.inbox.wake_loop()
        started = time.monotonic()
        # A timer on the future itself: cheaper per request than wait_for's wrapping.
        timer = loop.call_later(ctx.cfg.request_timeout_seconds, expire, fut)
        try:
            return await fut
        except TimeoutError:
            ctx.counters.proposals_failed += 1
            raise E.etcd_error(self._timeout_message(started)) from None
        finally:
            timer.cancel()
            self.waiters.pop(request_id, None)
            self._sent.pop(request_id, None)

    def _timeout_message(self, started: float) -> str:
        """The message of a proposal that timed out, chosen as etcd's parseProposeCtxErr does.

        "possibly due to previous leader failure" only if a new leader was elected after
        the request started, and less than two election timeouts after it (so the old
        leader failed while the request was in flight). No leader now, or one leader
        throughout, is a plain "request timed out": losing the leader is not blamed
        until a new one is elected, as etcd does.
        """
        elected = self.leader_elected_at  # etcd's leadElectedTime
        cfg = self._ctx.cfg
        window = 2 * cfg.election_ticks * cfg.tick_seconds
        if started < elected < started + window:
            return E.TIMEOUT_LEADER_FAIL
        return E.REQUEST_TIMEOUT

    def propose_nowait(self, request: Any) -> None:
        """Fire-and-forget proposal for the member's own housekeeping (lease expiry, compaction)."""
        if self._ctx.leadership.lead == 0:
            return
        self._queue.append((encode_request(self.next_request_id(), request), 0))
        self._ctx.inbox.wake_loop()

    def _can_forward(self) -> bool:
        """A proposal handed to the core now can reach a leader: this member leads, or
        its stream to the leader it follows is up."""
        ctx = self._ctx
        lead = ctx.leadership.lead
        return lead != 0 and (lead == self._member_id or ctx.transport.can_deliver(lead))

    def leader_known(self) -> None:
        """A leader was elected: the proposals sent before whose clients still wait are
        sent again, the held ones go to the core, and the calls waiting for a leader look
        again."""
        self.leader_wait.wake()
        self._send_again()
        self._release_held()

    def _send_again(self) -> None:
        """Queue a retry of every proposal handed to the core whose client still waits.

        Any of them may have been lost with the previous leader. The retry carries the
        first copy's data and the applied index it was first handed over at, so the
        apply can skip whichever copy comes second (node/mvcc/dedup.py).
        """
        sent = self._sent
        if not sent:
            return
        waiters = self.waiters
        again = [
            (encode_retry(data, since), request_id)
            for request_id, (data, since) in sent.items()
            if (fut := waiters.get(request_id)) is not None and not fut.done()
        ]
        if len(again) < len(sent):  # answered meanwhile: their clients have not run yet
            waiting = {request_id for _, request_id in again}
            self._sent = {k: v for k, v in sent.items() if k in waiting}
        if again:
            self.sent_again += len(again)
            self._queue.extend(again)
            self._ctx.inbox.wake_loop()

    def _release_held(self) -> None:
        """The held proposals whose clients still wait go back to the queue (drain_into
        holds them again while the leader stays unreachable)."""
        if not self._held:
            return
        held, self._held = self._held, []
        waiters = self.waiters
        self._queue.extend(p for p in held if (f := waiters.get(p[1])) and not f.done())
        self._ctx.inbox.wake_loop()

    def drain_into(self, node: RawNode, applied_index: int) -> None:
        """Hand every queued proposal to the core (`applied_index`: this member's now).

        One the core drops for want of a leader is held until one is known; one dropped
        with a leader known (a leadership transfer in progress) fails at once, as etcd's.
        While the leader cannot be reached (a follower's stream to it is down) they are
        all held; each call looks again (the tick's call at least every tick). A client
        proposal handed over is remembered with `applied_index`, to be sent again if
        the leader changes before it is answered (`leader_known`).
        """
        if self._held and self._can_forward():
            self._release_held()
        if not self._queue:
            return
        queue, self._queue = self._queue, []
        if not self._can_forward():  # the leader cannot be reached now: hold them
            self._held.extend(queue)
            if len(self._held) > HELD_PRUNE_AT:  # a long outage: forget answered ones
                waiters = self.waiters
                self._held = [p for p in self._held if (f := waiters.get(p[1])) and not f.done()]
            return
        sent = self._sent
        for data, request_id in queue:
            try:
                node.propose(data)
                if request_id and request_id not in sent:
                    sent[request_id] = (data, applied_index)
            except ProposalDropped as err:
                fut = self.waiters.get(request_id)
                if fut is not None and not fut.done():
                    if data[0] == RETRY_FORMAT:
                        pass  # its first copy may yet be applied: the client waits on
                    elif self._ctx.leadership.lead == 0:
                        self._held.append((data, request_id))
                    else:
                        self._ctx.counters.proposals_failed += 1
                        fut.set_exception(E.etcd_error(E.REQUEST_TIMEOUT))
                log.debug("proposal dropped", extra={"fields": {"reason": str(err)}})

    def resolve(self, results: Iterable[ApplyResult]) -> None:
        """Answer the clients whose entries were just applied."""
        waiters = self.waiters
        woken = False
        for result in results:
            fut = waiters.get(result.request_id)
            if fut is not None and not fut.done():
                woken = True
                if result.error is not None:
                    fut.set_exception(E.from_exception(result.error))
                else:
                    fut.set_result(result.response)
        if woken:
            for listener in self.answered_listeners:
                listener()

    def fail_all(self) -> None:
        """The member stops: every client still waiting gets etcd's "server stopped"."""
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(E.etcd_error(E.STOPPED))

    @property
    def pending(self) -> int:
        """Client proposals waiting to be applied (etcd_server_proposals_pending)."""
        return len(self.waiters)
