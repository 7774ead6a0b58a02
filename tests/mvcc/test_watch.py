"""Watches: live and historical events in revision order, compaction, slow consumers."""

from __future__ import annotations

import os

from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from node.mvcc.watch import WatchStream
from tests.mvcc.conftest import Log

PUT, DELETE = rq.EventType.PUT, rq.EventType.DELETE


def drain(stream: WatchStream, max_polls: int = 1000) -> list[rq.WatchResponse]:
    """Poll until nothing is left (bounded)."""
    out: list[rq.WatchResponse] = []
    for _ in range(max_polls):
        if not stream.ready:
            return out
        out.extend(stream.poll())
    raise AssertionError("stream never drained")


def events(responses: list[rq.WatchResponse], watch_id: int) -> list[tuple[int, bytes, int]]:
    return [
        (ev.type, ev.kv.key, ev.kv.mod_revision)
        for r in responses
        if r.watch_id == watch_id
        for ev in r.events
    ]


def test_key_and_prefix_watchers_get_puts_and_deletes_in_order(store: KVStore, raft: Log) -> None:
    wakeups: list[int] = []
    stream = store.watch_hub.new_stream(on_ready=lambda: wakeups.append(1))
    key_w = stream.watch(rq.WatchCreateRequest(b"foo"))
    prefix_w = stream.watch(rq.WatchCreateRequest(b"foo", b"fop"))
    assert key_w == rq.WatchResponse(watch_id=0, revision=1, created=True)
    assert prefix_w.watch_id == 1
    raft.apply(rq.PutRequest(b"foo", b"bar"))  # 2
    raft.batch(rq.PutRequest(b"foo/x", b"1"), rq.PutRequest(b"other", b"no"))  # 3, 4
    raft.apply(rq.DeleteRangeRequest(b"foo", b"fop"))  # 5: deletes foo and foo/x
    assert wakeups
    got = drain(stream)
    assert [r.created for r in got[:2]] == [True, True]
    assert events(got, 0) == [(PUT, b"foo", 2), (DELETE, b"foo", 5)]
    assert events(got, 1) == [
        (PUT, b"foo", 2),
        (PUT, b"foo/x", 3),
        (DELETE, b"foo", 5),
        (DELETE, b"foo/x", 5),
    ]
    # the reference: a live event for foo carries the new kv, header = its revision
    first = next(r for r in got if r.watch_id == 0 and r.events)
    assert first.revision == 2
    assert first.events[0].kv == rq.KeyValue(b"foo", 2, 2, 1, b"bar")
    # a delete event carries only key and mod_revision
    last = events(got, 0)[-1]
    assert last == (DELETE, b"foo", 5)


def test_start_revision_in_the_past_replays_history_then_goes_live(
    store: KVStore, raft: Log
) -> None:
    for i in range(5):
        raft.apply(rq.PutRequest(b"k", b"%d" % i))  # revisions 2..6
    stream = store.watch_hub.new_stream()
    wid = stream.watch(rq.WatchCreateRequest(b"k", start_revision=4, prev_kv=True)).watch_id
    raft.apply(rq.PutRequest(b"k", b"live"))  # 7: must come after the replay
    got = drain(stream)
    assert [e[2] for e in events(got, wid)] == [4, 5, 6, 7]
    replayed = [ev for r in got for ev in r.events]
    assert replayed[0].prev_kv == rq.KeyValue(b"k", 2, 3, 2, b"1")
    assert replayed[-1].kv.value == b"live"
    assert store.watch_hub.stats().slow_watchers == 0


def test_compacted_start_revision_gets_etcds_compacted_response(store: KVStore, raft: Log) -> None:
    for i in range(5):
        raft.apply(rq.PutRequest(b"k", b"%d" % i))
    raft.apply(rq.CompactionRequest(4))
    stream = store.watch_hub.new_stream()
    created = stream.watch(rq.WatchCreateRequest(b"k", start_revision=2))
    assert created.created
    got = drain(stream)
    assert got[-1] == rq.WatchResponse(watch_id=created.watch_id, canceled=True, compact_revision=4)
    assert store.watch_hub.stats().watchers == 0
    # starting exactly at the compact revision is allowed
    wid = stream.watch(rq.WatchCreateRequest(b"k", start_revision=4)).watch_id
    assert [e[2] for e in events(drain(stream), wid)] == [4, 5, 6]


def test_slow_watcher_falls_back_to_history_without_gaps(store: KVStore, raft: Log) -> None:
    stream = store.watch_hub.new_stream(max_buffered_events=8)
    wid = stream.watch(rq.WatchCreateRequest(b"k", b"l")).watch_id
    for i in range(100):  # nobody polls: apply must not block or drop
        raft.apply(rq.PutRequest(b"k%02d" % (i % 7), b"x"))
    stats = store.watch_hub.stats()
    assert stats.slow_watchers == 1
    assert stats.pending_events <= 8
    got = drain(stream)
    assert [e[2] for e in events(got, wid)] == list(range(2, 102))
    assert store.watch_hub.stats().slow_watchers == 0
    # and it is live again
    raft.apply(rq.PutRequest(b"k00", b"y"))
    assert [e[2] for e in events(drain(stream), wid)] == [102]


def test_a_never_reading_watcher_is_bounded_by_bytes_and_loses_nothing(
    store: KVStore, raft: Log
) -> None:
    # 60 puts of 100 KB: by count (4,096) the queue would hold all 6 MB
    budget = 1 << 20
    stream = store.watch_hub.new_stream(max_buffered_bytes=budget)
    wid = stream.watch(rq.WatchCreateRequest(b"big", b"bih", prev_kv=True)).watch_id
    for i in range(60):
        raft.apply(rq.PutRequest(b"big%d" % (i % 3), bytes([65 + i % 26]) * 100_000))
        assert stream.buffered_bytes <= budget + 300_000  # one response past it, at most
    assert store.watch_hub.stats().slow_watchers == 1
    got: list[rq.WatchResponse] = []
    for _ in range(1000):  # each poll hands over about the budget, never the backlog
        if not stream.ready:
            break
        batch = stream.poll()
        assert sum(len(ev.kv.value) for r in batch for ev in r.events) <= budget + 300_000
        got.extend(batch)
    revs = [e[2] for e in events(got, wid)]
    assert revs == list(range(2, 62))
    values = [ev.kv.value[:1] for r in got if r.watch_id == wid for ev in r.events]
    assert values == [bytes([65 + i % 26]) for i in range(60)]
    prevs = [ev.prev_kv for r in got if r.watch_id == wid for ev in r.events]
    assert all(p is not None for p in prevs[3:])
    assert store.watch_hub.stats().slow_watchers == 0


def test_poll_hands_over_at_most_about_max_bytes(store: KVStore, raft: Log) -> None:
    stream = store.watch_hub.new_stream()
    stream.watch(rq.WatchCreateRequest(b"p", b"q"))
    for i in range(10):
        raft.apply(rq.PutRequest(b"p%d" % i, b"v" * 10_000))
    first = stream.poll(max_bytes=25_000)
    assert 1 <= sum(len(r.events) for r in first) <= 3
    rest = drain(stream)
    assert sum(len(r.events) for r in first + rest) == 10


def test_slow_watcher_overtaken_by_compaction_is_canceled(store: KVStore, raft: Log) -> None:
    stream = store.watch_hub.new_stream(max_buffered_events=4)
    wid = stream.watch(rq.WatchCreateRequest(b"k")).watch_id
    for i in range(20):
        raft.apply(rq.PutRequest(b"k", b"%d" % i))
    raft.apply(rq.CompactionRequest(15))
    got = drain(stream)
    assert got[-1] == rq.WatchResponse(watch_id=wid, canceled=True, compact_revision=15)
    delivered = [e[2] for e in events(got, wid)]
    assert delivered == list(range(2, 2 + len(delivered)))  # in order, then the cancel


def test_filters_prev_kv_and_cancel(store: KVStore, raft: Log) -> None:
    stream = store.watch_hub.new_stream()
    no_put = stream.watch(
        rq.WatchCreateRequest(b"k", filters=[rq.WatchFilter.NOPUT], prev_kv=True)
    ).watch_id
    no_delete = stream.watch(rq.WatchCreateRequest(b"k", filters=[rq.WatchFilter.NODELETE]))
    raft.apply(rq.PutRequest(b"k", b"v"))
    raft.apply(rq.DeleteRangeRequest(b"k"))
    got = drain(stream)
    deletes = [ev for r in got if r.watch_id == no_put for ev in r.events]
    assert [ev.type for ev in deletes] == [DELETE]
    assert deletes[0].prev_kv == rq.KeyValue(b"k", 2, 2, 1, b"v")
    puts = [ev for r in got if r.watch_id == no_delete.watch_id for ev in r.events]
    assert [(ev.type, ev.prev_kv) for ev in puts] == [(PUT, None)]
    assert stream.cancel(no_put)
    assert not stream.cancel(no_put)
    assert drain(stream) == [rq.WatchResponse(watch_id=no_put, revision=3, canceled=True)]
    raft.apply(rq.DeleteRangeRequest(b"k"))  # nothing to delete: no event, no revision
    raft.apply(rq.PutRequest(b"k", b"again"))
    assert [r.watch_id for r in drain(stream)] == [no_delete.watch_id]


def test_progress_and_duplicate_ids(store: KVStore, raft: Log) -> None:
    stream = store.watch_hub.new_stream()
    stream.watch(rq.WatchCreateRequest(b"a", watch_id=7, progress_notify=True))
    dup = stream.watch(rq.WatchCreateRequest(b"b", watch_id=7))
    assert dup.canceled
    assert dup.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"
    raft.apply(rq.PutRequest(b"z", b"1"))
    drain(stream)
    stream.request_progress()
    assert drain(stream) == [rq.WatchResponse(watch_id=-1, revision=2)]
    store.watch_hub.progress_notify_all()
    assert drain(stream) == [rq.WatchResponse(watch_id=7, revision=2)]
    stream.close()
    assert store.watch_hub.stats().watchers == 0


def test_watchers_resync_after_a_snapshot_restore(
    store: KVStore, raft: Log, tmp_path: os.PathLike[str]
) -> None:
    leader = KVStore.open(os.path.join(tmp_path, "leader", "db"))
    try:
        lead = Log(leader)
        for i in range(3):
            lead.apply(rq.PutRequest(b"k", b"%d" % i))  # 2, 3, 4
        image = os.path.join(tmp_path, "snap.db")
        leader.backup(image)
    finally:
        leader.close()
    stream = store.watch_hub.new_stream()
    wid = stream.watch(rq.WatchCreateRequest(b"k")).watch_id
    drain(stream)
    store.restore_from(image)
    assert [e[2] for e in events(drain(stream), wid)] == [2, 3, 4]


def test_events_sent_count_per_watcher_as_etcd_does(store: KVStore, raft: Log) -> None:
    # etcd_debugging_mvcc_events_total counts events handed to watchers (one per watcher
    # per event), not changes applied: no watcher, nothing counted.
    raft.apply(rq.PutRequest(b"unwatched", b"1"))
    assert store.stats().events_total == 0
    stream = store.watch_hub.new_stream()
    stream.watch(rq.WatchCreateRequest(b"k"))
    stream.watch(rq.WatchCreateRequest(b"k", b"l"))
    raft.apply(rq.PutRequest(b"k", b"v"))  # seen by both watchers
    raft.apply(rq.PutRequest(b"other", b"v"))  # by none
    drain(stream)
    assert store.stats().events_total == 2
