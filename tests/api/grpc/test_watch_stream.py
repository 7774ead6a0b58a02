"""The Watch stream over gRPC, each scenario run on raftmon1 and on etcd1 with one expectation.

What a client of etcd's Watch relies on: the created answer, history replay from a
start revision, prev_kv, filters, cancel, progress requests, the compaction cancel,
several watchers on one stream and the client's own watch ids.
"""

from __future__ import annotations

import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.mvccpb import kv_pb2
from tests.api.grpc.conftest import Etcd
from tests.api.grpc.wire import Session, T

pytestmark = [pytest.mark.tools]

PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE
WatchSession = Session[pb.WatchRequest, pb.WatchResponse]


def _watch(server: Etcd) -> WatchSession:
    return Session(server.watch.Watch)


def _put(server: Etcd, key: bytes, value: bytes) -> int:
    return int(server.kv.Put(pb.PutRequest(key=key, value=value), timeout=T).header.revision)


def _delete(server: Etcd, key: bytes) -> int:
    return int(server.kv.DeleteRange(pb.DeleteRangeRequest(key=key), timeout=T).header.revision)


def _create(stream: WatchSession, **fields: object) -> pb.WatchResponse:
    stream.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(**fields)))  # type: ignore[arg-type]
    created = stream.recv()
    assert created.created, created
    return created


def _events(stream: WatchSession, watch_id: int, n: int) -> list[kv_pb2.Event]:
    """The next `n` events of watcher `watch_id` (etcd may split them over responses)."""
    got: list[kv_pb2.Event] = []
    while len(got) < n:
        resp = stream.recv()
        assert resp.watch_id == watch_id, resp
        assert not resp.canceled, resp
        got.extend(resp.events)
    assert len(got) == n, got
    return got


def test_created_answer_names_the_watcher_and_the_current_revision(server: Etcd) -> None:
    now = _put(server, b"/wcreate/k", b"v")
    with _watch(server) as stream:
        created = _create(stream, key=b"/wcreate/k")
        assert (created.watch_id, created.canceled, list(created.events)) == (0, False, [])
        assert created.header.revision == now
        assert created.header.cluster_id != 0
        assert created.header.member_id != 0


def test_start_revision_replays_the_prefix_history_with_prev_kv(server: Etcd) -> None:
    first = _put(server, b"/wreplay/a", b"1")
    _put(server, b"/wreplay/a", b"2")
    _put(server, b"/wreplay/b", b"3")
    _put(server, b"/wreplay0", b"outside")  # range_end is exclusive
    _delete(server, b"/wreplay/b")
    with _watch(server) as stream:
        created = _create(
            stream, key=b"/wreplay/", range_end=b"/wreplay0", start_revision=first, prev_kv=True
        )
        events = _events(stream, created.watch_id, 4)
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
        (PUT, b"/wreplay/a", b"1"),
        (PUT, b"/wreplay/a", b"2"),
        (PUT, b"/wreplay/b", b"3"),
        (DELETE, b"/wreplay/b", b""),
    ]
    assert [e.kv.mod_revision - first for e in events] == [0, 1, 2, 4]
    assert [e.kv.version for e in events] == [1, 2, 1, 0]
    assert [e.prev_kv.value for e in events] == [b"", b"1", b"", b"3"]
    assert events[3].prev_kv.mod_revision == events[2].kv.mod_revision


def test_a_key_watcher_sees_only_its_key_as_it_changes(server: Etcd) -> None:
    with _watch(server) as stream:
        created = _create(stream, key=b"/wkey/a")
        _put(server, b"/wkey/ab", b"sibling")
        rev = _put(server, b"/wkey/a", b"mine")
        [event] = _events(stream, created.watch_id, 1)
        assert (event.type, event.kv.key, event.kv.mod_revision) == (PUT, b"/wkey/a", rev)
        assert not event.HasField("prev_kv")  # not asked for


def test_noput_filter_passes_only_deletes(server: Etcd) -> None:
    with _watch(server) as stream:
        created = _create(
            stream, key=b"/wnoput/k", filters=[pb.WatchCreateRequest.NOPUT], prev_kv=True
        )
        _put(server, b"/wnoput/k", b"v")
        gone = _delete(server, b"/wnoput/k")
        [event] = _events(stream, created.watch_id, 1)
        assert (event.type, event.kv.mod_revision, event.prev_kv.value) == (DELETE, gone, b"v")


def test_nodelete_filter_passes_only_puts(server: Etcd) -> None:
    with _watch(server) as stream:
        created = _create(stream, key=b"/wnodel/k", filters=[pb.WatchCreateRequest.NODELETE])
        _put(server, b"/wnodel/k", b"1")
        _delete(server, b"/wnodel/k")
        _put(server, b"/wnodel/k", b"2")
        events = _events(stream, created.watch_id, 2)
        assert [(e.type, e.kv.value, e.kv.version) for e in events] == [
            (PUT, b"1", 1),
            (PUT, b"2", 1),
        ]


def test_cancel_answers_canceled_and_stops_the_watcher(server: Etcd) -> None:
    with _watch(server) as stream:
        first = _create(stream, key=b"/wcancel/k")
        stream.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=first.watch_id)))
        canceled = stream.recv()
        assert (canceled.watch_id, canceled.canceled, canceled.created) == (
            first.watch_id,
            True,
            False,
        )
        assert canceled.compact_revision == 0
        assert canceled.cancel_reason == ""
        # A second watcher on the same key gets the next event; the canceled one nothing.
        second = _create(stream, key=b"/wcancel/k")
        assert second.watch_id != first.watch_id
        _put(server, b"/wcancel/k", b"v")
        [event] = _events(stream, second.watch_id, 1)
        assert event.kv.value == b"v"


def test_progress_request_answers_the_current_revision_to_the_stream(server: Etcd) -> None:
    with _watch(server) as stream:
        created = _create(stream, key=b"/wprogress/k")
        now = _put(server, b"/wprogress/other", b"x")
        stream.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
        progress = stream.recv()
        # etcd 3.4 addresses it to no watcher: watch_id -1 (clientv3.InvalidWatchID)
        assert progress.watch_id == -1
        assert (progress.created, progress.canceled, list(progress.events)) == (False, False, [])
        assert progress.header.revision == now
        assert created.watch_id == 0


def test_a_watch_from_a_compacted_revision_is_canceled_with_the_compact_revision(
    server: Etcd,
) -> None:
    old = _put(server, b"/wcompact/k", b"1")
    new = _put(server, b"/wcompact/k", b"2")
    server.kv.Compact(pb.CompactionRequest(revision=new), timeout=T)
    with _watch(server) as stream:
        created = _create(stream, key=b"/wcompact/k", start_revision=old)
        canceled = stream.recv()
    assert canceled.watch_id == created.watch_id
    assert canceled.canceled
    assert canceled.compact_revision == new
    assert list(canceled.events) == []
    assert canceled.cancel_reason == ""  # etcd 3.4 gives no reason for a compaction cancel


def test_several_watchers_share_one_stream_each_with_its_own_events(server: Etcd) -> None:
    with _watch(server) as stream:
        a = _create(stream, key=b"/wmany/a")
        b = _create(stream, key=b"/wmany/b")
        every = _create(stream, key=b"/wmany/", range_end=b"/wmany0")
        assert [a.watch_id, b.watch_id, every.watch_id] == [0, 1, 2]
        _put(server, b"/wmany/a", b"1")
        _put(server, b"/wmany/b", b"2")
        seen: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        while sum(len(v) for v in seen.values()) < 4:
            resp = stream.recv()
            seen[resp.watch_id].extend(e.kv.key for e in resp.events)
        assert seen == {0: [b"/wmany/a"], 1: [b"/wmany/b"], 2: [b"/wmany/a", b"/wmany/b"]}


def test_client_chosen_watch_id_is_kept_and_a_duplicate_is_refused(server: Etcd) -> None:
    with _watch(server) as stream:
        mine = _create(stream, key=b"/wid/k", watch_id=7)
        assert mine.watch_id == 7
        again = pb.WatchCreateRequest(key=b"/wid/j", watch_id=7)
        stream.send(pb.WatchRequest(create_request=again))
        dup = stream.recv()
        assert (dup.watch_id, dup.created, dup.canceled) == (-1, True, True)
        assert dup.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"
        auto = _create(stream, key=b"/wid/j")  # ids the server picks skip the client's
        assert auto.watch_id not in (7, -1)
        _put(server, b"/wid/k", b"v")
        [event] = _events(stream, 7, 1)
        assert event.kv.key == b"/wid/k"


@pytest.mark.parametrize("fragment", [True, False])
def test_a_response_over_the_grpc_limit_is_fragmented_only_when_asked(
    server: Etcd, fragment: bool
) -> None:
    """etcd splits at --max-request-bytes + 512 KiB (2 MiB here): 4 x 600 kB of history
    goes as 3 events (fragment=true) then 1, or whole without fragment."""
    prefix = b"/wfrag-%d/" % fragment
    first = _put(server, prefix + b"k0", b"x" * 600_000)
    for i in range(1, 4):
        _put(server, prefix + b"k%d" % i, b"x" * 600_000)
    with _watch(server) as stream:
        created = _create(
            stream, key=prefix, range_end=prefix + b"\xff", start_revision=first, fragment=fragment
        )
        parts: list[pb.WatchResponse] = []
        while sum(len(p.events) for p in parts) < 4:
            parts.append(stream.recv())
    assert {p.watch_id for p in parts} == {created.watch_id}
    shape = [(len(p.events), p.fragment) for p in parts]
    assert shape == ([(3, True), (1, False)] if fragment else [(4, False)])
    assert [e.kv.key for p in parts for e in p.events] == [prefix + b"k%d" % i for i in range(4)]
    server.kv.DeleteRange(pb.DeleteRangeRequest(key=prefix, range_end=prefix + b"\xff"), timeout=T)
