"""Periodic watch progress (progress_notify) over gRPC, on raftmon and etcd alike.

etcd tells a quiet watcher created with progress_notify the current revision every
--experimental-watch-progress-notify-interval (10 minutes by default); both members
here run with 1 s, so a notification comes within a couple of seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from lab.etcd_cluster import EtcdCluster
from tests.api.grpc.conftest import Etcd, stubs
from tests.api.grpc.wire import Session, T
from tests.helpers import FAST, require_tool, running_cluster

pytestmark = [pytest.mark.tools]

INTERVAL = "--experimental-watch-progress-notify-interval=1s"


@pytest.fixture(scope="module", params=["raftmon", "etcd"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Etcd]:
    """A one-member raftmon or etcd sending progress every second, and its stubs."""
    base: Path = tmp_path_factory.mktemp(f"progress-{request.param}")
    if request.param == "raftmon":
        with running_cluster(base, 1, [INTERVAL]) as raftmon:
            yield from _stubs(raftmon.endpoints[0])
        return
    with EtcdCluster(require_tool("etcd"), base, size=1, extra_args=[*FAST, INTERVAL]) as etcd:
        yield from _stubs(etcd.endpoints[0])


def _stubs(endpoint: str) -> Iterator[Etcd]:
    with grpc.insecure_channel(urlsplit(endpoint).netloc) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield stubs(channel)


def test_a_quiet_progress_notify_watcher_hears_the_current_revision(server: Etcd) -> None:
    with Session[pb.WatchRequest, pb.WatchResponse](server.watch.Watch) as stream:
        for key, notify in [(b"/pn/quiet", True), (b"/pn/plain", False)]:
            create = pb.WatchCreateRequest(key=key, progress_notify=notify)
            stream.send(pb.WatchRequest(create_request=create))
            assert stream.recv().created
        now = server.kv.Put(pb.PutRequest(key=b"/pn/elsewhere", value=b"v"), timeout=T)
        progress = stream.recv(timeout=T)  # a few intervals at most
        assert progress.watch_id == 0  # the progress_notify watcher, not the plain one
        assert (progress.created, progress.canceled, list(progress.events)) == (False, False, [])
        assert progress.header.revision >= now.header.revision
        # the plain watcher still gets its events; only the notify watcher hears progress
        put = server.kv.Put(pb.PutRequest(key=b"/pn/plain", value=b"v"), timeout=T)
        while not (reply := stream.recv()).events:
            assert reply.watch_id == 0
        assert reply.watch_id == 1
        assert reply.events[0].kv.mod_revision == put.header.revision
