"""Watches: etcd's watchable store, fed by apply after each SQLite commit.

Shape (etcd 3.4 mvcc/watchable_store.go, etcdserver/api/v3rpc/watch.go):
- A `WatchStream` is one client watch stream (one gRPC stream / one gateway
  POST /v3/watch). It owns watchers and a bounded queue of `WatchResponse`s.
- A watcher is *synced* when it has seen everything up to the current
  revision: it then receives live events from `WatchHub.notify`. A watcher is
  *unsynced* when it must first read history from the database: created with a
  start revision in the past, fell behind (slow consumer), or the store was
  restored from a snapshot. Unsynced watchers catch up inside `poll()`, reading
  history in chunks that fit the queue, and rejoin the synced set when they
  reach the current revision - so events always arrive in revision order,
  without gaps or repeats.
- A watcher whose next revision has been compacted away gets etcd's answer: a
  response with canceled=True and compact_revision set (header revision 0, as
  etcd sends it), and is removed.

Slow consumers (the policy): apply never blocks and never drops events. When a
batch would overflow a stream's queue (`max_buffered_events`), the affected
watchers become unsynced at the first revision they did not get; once the
consumer drains the queue, `poll()` replays that history from SQLite. If the
consumer is so slow that compaction overtakes it, the watcher is canceled with
compact_revision (etcd's behaviour for a compacted watcher).

No asyncio here: a stream calls `on_ready()` when it goes from idle to having
something to read; the gateway bridges that to its event loop (for example
`loop.call_soon_threadsafe(event.set)`) and calls `poll()`. Events and
KeyValues are shared between watchers: treat them as read-only.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from node.errors import WATCH_DUPLICATE_ID
from node.mvcc import requests as rq
from node.mvcc.kv import HistoryQuery, event_size, in_range

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_EVENTS = 4096
# A stream's queue is bounded by bytes too: a count alone let a never-reading watcher
# hold 192 MB after 400 puts of 500 KB. etcd 3.4 bounds a stream by count (128 responses
# in its channel, then the watcher becomes a "victim" that is retried later), and gRPC's
# flow control window bounds what is in flight. 4 MiB holds two largest requests
# (--max-request-bytes 1.5 MiB) with room to spare, and thousands of small events; a
# watcher past it falls back to history, as a victim does, and loses nothing. The
# gateway takes at most this much per poll too, so a stream holds about twice this.
DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024
RESPONSE_OVERHEAD_BYTES = 64  # header and ids around a response's events
PROGRESS_WATCH_ID = -1  # etcd 3.4: a stream-wide progress response carries watch_id -1


class WatchSource(Protocol):
    """What the hub needs from the store."""

    def current_revision(self) -> int: ...

    def compact_revision(self) -> int: ...

    def history(self, q: HistoryQuery) -> list[rq.Event]: ...


def response_size(resp: rq.WatchResponse) -> int:
    """Bytes a queued response holds, about (its events' keys and values dominate)."""
    return RESPONSE_OVERHEAD_BYTES + sum(event_size(ev) for ev in resp.events)


@dataclass(slots=True, eq=False)
class Watcher:
    id: int
    stream: WatchStream
    key: bytes
    range_end: bytes
    prev_kv: bool
    no_put: bool
    no_delete: bool
    progress_notify: bool
    next_rev: int  # Invariant: every event with revision < next_rev has been queued
    synced: bool = True

    def select(self, events: list[rq.Event]) -> list[rq.Event]:
        """Events this watcher wants (key range, filters, prev_kv stripped if not asked)."""
        out = []
        for ev in events:
            if ev.kv.mod_revision < self.next_rev:
                continue
            if not in_range(ev.kv.key, self.key, self.range_end):
                continue
            if ev.type == rq.EventType.PUT:
                if self.no_put:
                    continue
            elif self.no_delete:
                continue
            if ev.prev_kv is not None and not self.prev_kv:
                ev = rq.Event(ev.type, ev.kv, None)
            out.append(ev)
        return out


@dataclass(slots=True)
class HubStats:
    watchers: int
    streams: int
    slow_watchers: int
    pending_events: int
    events_sent: int  # events handed to watchers' streams (etcd_debugging_mvcc_events_total)


class WatchStream:
    """One client stream: create/cancel watchers, request progress, poll responses."""

    def __init__(
        self,
        hub: WatchHub,
        on_ready: Callable[[], None] | None,
        max_buffered_events: int,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        self.hub = hub
        self.on_ready = on_ready
        self.max_buffered_events = max_buffered_events
        self.max_buffered_bytes = max_buffered_bytes
        self.watchers: dict[int, Watcher] = {}
        self.closed = False
        # (response, events it counts for, its size in bytes)
        self._queue: deque[tuple[rq.WatchResponse, int, int]] = deque()
        self._buffered = 0  # events (or 1 per event-less response) in _queue
        self._buffered_bytes = 0  # response_size of everything in _queue
        self._next_id = 0
        self._progress_pending = False

    # ---- client requests -----------------------------------------------------------------
    def watch(self, req: rq.WatchCreateRequest) -> rq.WatchResponse:
        """Create a watcher; queues (and returns) the created response first."""
        hub = self.hub
        cur = hub.source.current_revision()
        wid = req.watch_id
        if wid != 0 and wid in self.watchers:
            resp = rq.WatchResponse(
                watch_id=-1, revision=cur, created=True, canceled=True,
                cancel_reason=WATCH_DUPLICATE_ID,
            )  # fmt: skip
            self._push(resp, 1)
            return resp
        if wid == 0:
            while self._next_id in self.watchers:
                self._next_id += 1
            wid = self._next_id
            self._next_id += 1
        start = req.start_revision
        w = Watcher(
            id=wid,
            stream=self,
            key=req.key,
            range_end=req.range_end,
            prev_kv=req.prev_kv,
            no_put=rq.WatchFilter.NOPUT in req.filters,
            no_delete=rq.WatchFilter.NODELETE in req.filters,
            progress_notify=req.progress_notify,
            next_rev=start if start > 0 else cur + 1,
            # etcd: synced when starting from "now" or from a future revision
            synced=start == 0 or start > cur,
        )
        self.watchers[wid] = w
        hub._add(w)
        resp = rq.WatchResponse(watch_id=wid, revision=cur, created=True)
        self._push(resp, 1)
        return resp

    def cancel(self, watch_id: int) -> bool:
        """Cancel a watcher; queues etcd's canceled response. False if unknown."""
        w = self.watchers.pop(watch_id, None)
        if w is None:
            return False
        self.hub._remove(w)
        self._push(
            rq.WatchResponse(
                watch_id=watch_id, revision=self.hub.source.current_revision(), canceled=True
            ),
            1,
        )
        return True

    def request_progress(self) -> None:
        """etcd 3.4 RequestProgress: report the current revision (watch_id -1).

        Sent only once every watcher of the stream is synced, so the revision it
        reports really is "everything up to here has been delivered".
        """
        self._progress_pending = True
        if not self._has_unsynced():
            self._flush_progress()

    def close(self) -> None:
        for w in self.watchers.values():
            self.hub._remove(w)
        self.watchers.clear()
        self._queue.clear()
        self._buffered = 0
        self._buffered_bytes = 0
        self.closed = True
        self.hub._streams.discard(self)

    # ---- consumer side ---------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Something to poll: queued responses, history to replay or a progress report."""
        return bool(self._queue) or self._has_unsynced() or self._progress_pending

    @property
    def buffered_events(self) -> int:
        return self._buffered

    @property
    def buffered_bytes(self) -> int:
        return self._buffered_bytes

    def poll(
        self, max_events: int | None = None, max_bytes: int | None = None
    ) -> list[rq.WatchResponse]:
        """Take queued responses; replay history for unsynced watchers as room allows.

        At most `max_events` events and about `max_bytes` bytes (always at least one
        response), so what a consumer holds while it writes is bounded like the queue.
        """
        limit = max_events or self.max_buffered_events
        byte_limit = max_bytes or self.max_buffered_bytes
        out: list[rq.WatchResponse] = []
        taken = taken_bytes = 0
        while True:
            while self._queue and taken < limit and (not out or taken_bytes < byte_limit):
                resp, n, size = self._queue.popleft()
                self._buffered -= n
                self._buffered_bytes -= size
                taken += n
                taken_bytes += size
                out.append(resp)
            if taken >= limit or taken_bytes >= byte_limit:
                break
            if self._queue or not self._has_unsynced():
                break
            if not self._catch_up(limit - taken, byte_limit - taken_bytes):
                break
        if (
            self._progress_pending
            and not self._has_unsynced()
            and taken < limit
            and taken_bytes < byte_limit
        ):
            self._flush_progress()
            out.extend(resp for resp, _, _ in self._queue)
            self._queue.clear()
            self._buffered = 0
            self._buffered_bytes = 0
        return out

    # ---- internals ---------------------------------------------------------------------------
    def _has_unsynced(self) -> bool:
        return any(not w.synced for w in self.watchers.values())

    def _flush_progress(self) -> None:
        self._progress_pending = False
        self._push(
            rq.WatchResponse(
                watch_id=PROGRESS_WATCH_ID, revision=self.hub.source.current_revision()
            ),
            1,
        )

    def _push(self, resp: rq.WatchResponse, n: int) -> None:
        was_idle = not self._queue
        size = response_size(resp)
        self._queue.append((resp, n, size))
        self._buffered += n
        self._buffered_bytes += size
        self.hub.events_sent += len(resp.events)
        if was_idle:
            self.hub._wake(self)

    def _deliver(self, w: Watcher, events: list[rq.Event], cur: int) -> None:
        """Live events for a synced watcher, or fall back to history if the queue is full
        (by events or by bytes; an empty queue always takes one response)."""
        if self._buffered and (
            self._buffered + len(events) > self.max_buffered_events
            or self._buffered_bytes + RESPONSE_OVERHEAD_BYTES + sum(map(event_size, events))
            > self.max_buffered_bytes
        ):
            w.synced = False
            w.next_rev = events[0].kv.mod_revision
            self.hub.slow_transitions += 1
            log.debug(
                "watcher fell behind; will replay from history",
                extra={"fields": {"watch-id": w.id, "from-revision": w.next_rev}},
            )
            return
        self._push(rq.WatchResponse(watch_id=w.id, revision=cur, events=events), len(events))
        w.next_rev = cur + 1

    def _catch_up(self, budget: int, byte_budget: int | None = None) -> bool:
        """Replay history into the queue for unsynced watchers; True if anything changed.

        At most `budget` events and about `byte_budget` bytes (a revision is never
        split: one larger than the budget goes out whole).
        """
        if byte_budget is None:
            byte_budget = self.max_buffered_bytes
        src = self.hub.source
        changed = False
        for w in list(self.watchers.values()):
            if w.synced or budget <= 0 or byte_budget <= 0:
                continue
            changed = True
            compact = src.compact_revision()
            if w.next_rev < compact:
                # etcd: WatchResponse{CompactRevision} with an empty header revision.
                self.watchers.pop(w.id, None)
                self.hub._remove(w)
                self._push(
                    rq.WatchResponse(watch_id=w.id, canceled=True, compact_revision=compact), 1
                )
                budget -= 1
                continue
            cur = src.current_revision()
            if w.next_rev > cur:
                w.synced = True
                continue
            events = src.history(
                HistoryQuery(
                    w.key, w.range_end, w.next_rev, cur, budget + 1, w.prev_kv, byte_budget
                )
            )
            upto = cur
            fetched = sum(map(event_size, events))
            if len(events) <= budget and fetched >= byte_budget:
                # stopped by bytes, at a revision boundary: the rest comes next time
                upto = events[-1].kv.mod_revision
            elif len(events) > budget:
                last = events[-1].kv.mod_revision
                if events[0].kv.mod_revision != last:
                    # stop at a revision boundary: a revision is never split
                    while events and events[-1].kv.mod_revision == last:
                        events.pop()
                    upto = last - 1
                else:
                    # one revision larger than the budget goes out whole
                    events = src.history(
                        HistoryQuery(w.key, w.range_end, last, last, 1 << 62, w.prev_kv)
                    )
                    upto = last
            events = w.select(events)
            if events:
                resp = rq.WatchResponse(watch_id=w.id, revision=cur, events=events)
                self._push(resp, len(events))
                budget -= len(events)
                byte_budget -= response_size(resp)
            w.next_rev = upto + 1
            if w.next_rev > cur:
                w.synced = True
        return changed


class WatchHub:
    """All streams of one member; `notify` is called by the store after each commit."""

    def __init__(
        self,
        source: WatchSource,
        *,
        max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        self.source = source
        self.max_buffered_events = max_buffered_events
        self.max_buffered_bytes = max_buffered_bytes
        self._streams: set[WatchStream] = set()
        self._by_key: dict[bytes, set[Watcher]] = {}
        self._ranges: set[Watcher] = set()
        self._count = 0
        self._prev_kv = 0
        self.slow_transitions = 0  # times a watcher fell behind (diagnostics)
        self.events_sent = 0  # as etcd counts them: per watcher, per event queued to it

    def new_stream(
        self,
        on_ready: Callable[[], None] | None = None,
        max_buffered_events: int | None = None,
        max_buffered_bytes: int | None = None,
    ) -> WatchStream:
        stream = WatchStream(
            self,
            on_ready,
            max_buffered_events or self.max_buffered_events,
            max_buffered_bytes or self.max_buffered_bytes,
        )
        self._streams.add(stream)
        return stream

    @property
    def active(self) -> bool:
        """Any watcher at all: the store builds events only then."""
        return self._count > 0

    @property
    def wants_prev_kv(self) -> bool:
        return self._prev_kv > 0

    def notify(self, rev_events: list[tuple[int, list[rq.Event]]], cur: int) -> None:
        """Live delivery of committed revisions (in order) to synced watchers."""
        matched: dict[Watcher, list[rq.Event]] = {}
        by_key, ranges = self._by_key, self._ranges
        for _rev, events in rev_events:
            for ev in events:
                for w in by_key.get(ev.kv.key, ()):
                    if w.synced:
                        matched.setdefault(w, []).append(ev)
                for w in ranges:
                    if w.synced and in_range(ev.kv.key, w.key, w.range_end):
                        matched.setdefault(w, []).append(ev)
        for w, events in matched.items():
            selected = w.select(events)
            if selected:
                w.stream._deliver(w, selected, cur)
        # Synced watchers that matched nothing have still seen up to `cur`.
        for stream in self._streams:
            for w in stream.watchers.values():
                if w.synced and w.next_rev <= cur:
                    w.next_rev = cur + 1

    def progress_notify_all(self) -> None:
        """etcd's periodic progress (every 10 min there): an empty response carrying the
        current revision to each synced watcher created with progress_notify and an
        empty queue."""
        cur = self.source.current_revision()
        for stream in list(self._streams):
            if stream._queue:
                continue
            for w in stream.watchers.values():
                if w.progress_notify and w.synced:
                    stream._push(rq.WatchResponse(watch_id=w.id, revision=cur), 1)

    def on_restore(self) -> None:
        """The store was replaced by a snapshot image: every watcher resyncs from history."""
        for stream in list(self._streams):
            for w in stream.watchers.values():
                w.synced = False
            if stream.watchers:
                self._wake(stream)

    def stats(self) -> HubStats:
        slow = sum(1 for s in self._streams for w in s.watchers.values() if not w.synced)
        pending = sum(s._buffered for s in self._streams)
        return HubStats(self._count, len(self._streams), slow, pending, self.events_sent)

    def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
            self._wake(stream)

    # ---- index maintenance -------------------------------------------------------------------
    def _add(self, w: Watcher) -> None:
        if w.range_end:
            self._ranges.add(w)
        else:
            self._by_key.setdefault(w.key, set()).add(w)
        self._count += 1
        self._prev_kv += w.prev_kv
        if not w.synced:
            self._wake(w.stream)

    def _remove(self, w: Watcher) -> None:
        if w.range_end:
            if w not in self._ranges:
                return
            self._ranges.discard(w)
        else:
            ws = self._by_key.get(w.key)
            if ws is not None and w in ws:
                ws.discard(w)
                if not ws:
                    del self._by_key[w.key]
            else:
                return
        self._count -= 1
        self._prev_kv -= w.prev_kv

    def _wake(self, stream: WatchStream) -> None:
        cb = stream.on_ready
        if cb is None:
            return
        try:
            cb()
        except Exception:
            log.exception("watch stream on_ready callback failed")
