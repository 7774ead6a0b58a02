"""Watch streams over the gateway: events in order, deletes included, resumable."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from lab.cluster import LocalCluster
from tests.cluster.etcdjson import b64, call, put, unb64, watch_lines

pytestmark = pytest.mark.cluster


WatchEvent = tuple[str, str, int]  # (type, key, mod_revision)


def collect(
    url: str, body: dict[str, Any], want: int, out: list[WatchEvent], ready: threading.Event
) -> None:
    for obj in watch_lines(url, body, timeout=15):
        result = obj["result"]
        if result.get("created"):
            ready.set()
        out.extend(
            (ev.get("type", "PUT"), unb64(ev["kv"]["key"]), int(ev["kv"]["mod_revision"]))
            for ev in result.get("events", [])
        )
        if len(out) >= want:
            return


def test_watch_receives_puts_and_deletes_in_order_and_resumes_from_a_revision(
    cluster3: LocalCluster,
) -> None:
    watcher_url = cluster3.members[1].client_url
    writer_url = cluster3.members[0].client_url
    events: list[WatchEvent] = []
    ready = threading.Event()
    body = {"create_request": {"key": b64("w/"), "range_end": b64("w0")}}
    thread = threading.Thread(
        target=collect, args=(watcher_url, body, 5, events, ready), daemon=True
    )
    thread.start()
    assert ready.wait(10), "watch was not created"
    revs = [int(put(writer_url, f"w/{i}", f"v{i}")["header"]["revision"]) for i in range(4)]
    deleted = call(writer_url, "/v3/kv/deleterange", {"key": b64("w/1")})
    revs.append(int(deleted["header"]["revision"]))
    thread.join(15)
    assert [e[0] for e in events] == ["PUT", "PUT", "PUT", "PUT", "DELETE"]
    assert [e[1] for e in events] == ["w/0", "w/1", "w/2", "w/3", "w/1"]
    assert [e[2] for e in events] == revs
    # resume from the third event's revision: history is replayed from there
    resumed: list[WatchEvent] = []
    ready2 = threading.Event()
    body2 = {
        "create_request": {"key": b64("w/"), "range_end": b64("w0"), "start_revision": str(revs[2])}
    }
    collect(watcher_url, body2, 3, resumed, ready2)
    assert [(e[0], e[1]) for e in resumed] == [("PUT", "w/2"), ("PUT", "w/3"), ("DELETE", "w/1")]


def test_watch_from_a_compacted_revision_is_canceled_with_the_compact_revision(
    cluster3: LocalCluster,
) -> None:
    url = cluster3.members[0].client_url
    first = int(put(url, "wc/a", "1")["header"]["revision"])
    last = int(put(url, "wc/a", "2")["header"]["revision"])
    assert "error" not in call(url, "/v3/kv/compaction", {"revision": str(last)})
    body = {"create_request": {"key": b64("wc/a"), "start_revision": str(first)}}
    for obj in watch_lines(url, body, timeout=10):
        result = obj["result"]
        if result.get("canceled"):
            assert int(result["compact_revision"]) == last
            break


def test_open_watch_and_keepalive_streams_do_not_hold_a_stopping_member(
    fresh_cluster: Callable[..., LocalCluster],
) -> None:
    # aiohttp waits for running handlers on shutdown; a watch waiting for its next event
    # once held a SIGTERM'd member until it was SIGKILLed. It must exit by itself, 0.
    cluster = fresh_cluster(1)
    member = cluster.members[0]
    host, port = member.client_url.removeprefix("http://").split(":")
    lease = call(member.client_url, "/v3/lease/grant", {"TTL": 60})["ID"]
    streams = []
    for path, body in (
        ("/v3/watch", {"create_request": {"key": b64("held")}}),
        ("/v3/lease/keepalive", {"ID": lease}),
    ):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", path, body=json.dumps(body))
        resp = conn.getresponse()
        assert resp.status == 200
        assert "result" in json.loads(resp.readline())  # the stream is open and answering
        streams.append(conn)
    try:
        assert member.proc is not None
        member.proc.terminate()
        assert member.proc.wait(timeout=8) == 0, "the member exited by itself, cleanly"
    finally:
        for conn in streams:
            conn.close()
