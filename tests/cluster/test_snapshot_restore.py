"""Back up a 3-member cluster through the gateway and bring it back as a new cluster.

The course's disaster drill, end to end with real processes: writes, a snapshot
streamed by one member, `raftmon snapshot restore` into three fresh data dirs (with
a new cluster token and new peer URLs), a new cluster started on them. Every key,
its revisions, the store's revision and the lease must be there, under new ids.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import LocalCluster
from tests.cluster.conftest import FAST
from tests.cluster.etcdjson import b64, call, put

pytestmark = pytest.mark.cluster

KEYS = 120


def _save_snapshot(url: str, path: Path) -> None:
    """What `etcdctl snapshot save` does, over the JSON gateway: blobs, sha256 last."""
    with urllib.request.urlopen(url + "/v3/maintenance/snapshot", b"{}", timeout=60) as r:
        lines = r.read().splitlines()
    blobs = [base64.b64decode(json.loads(line)["result"]["blob"]) for line in lines]
    assert hashlib.sha256(b"".join(blobs[:-1])).digest() == blobs[-1]
    path.write_bytes(b"".join(blobs))


def _everything(url: str) -> dict[str, Any]:
    resp = call(url, "/v3/kv/range", {"key": b64("\0"), "range_end": b64("\0")})
    return {"revision": resp["header"]["revision"], "kvs": resp.get("kvs", [])}


def test_snapshot_restores_into_a_new_cluster_with_every_key_and_the_revision(
    fresh_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    old = fresh_cluster(3)
    leader = old.member(old.wait_leader()).client_url
    lease = call(leader, "/v3/lease/grant", {"TTL": 600})["ID"]
    for i in range(KEYS):
        assert "error" not in put(leader, f"drill/{i:03d}", f"value-{i}" * 20)
    put(leader, "drill/leased", "x", lease=lease)
    put(leader, "drill/000", "rewritten")
    call(leader, "/v3/kv/deleterange", {"key": b64("drill/001")})
    follower = next(m for m in old.members if m.client_url != leader)
    before = _everything(follower.client_url)
    old_cluster_id = call(leader, "/v3/maintenance/status", {})["header"]["cluster_id"]
    backup = tmp_path / "backup.db"
    _save_snapshot(follower.client_url, backup)
    old.stop()

    new = LocalCluster(tmp_path / "new", 3, extra_args=FAST, token="restored-drill")
    for m in new.members:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lab",
                "snapshot",
                "restore",
                str(backup),
                f"--name={m.name}",
                f"--data-dir={m.data_dir}",
                f"--initial-cluster={new.initial_cluster()}",
                f"--initial-cluster-token={new.token}",
                f"--initial-advertise-peer-urls={m.peer_url}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    try:
        new.start()
        for m in new.members:
            assert _everything(m.client_url) == before, m.name
        url = new.member(new.wait_leader()).client_url
        status = call(url, "/v3/maintenance/status", {})
        assert status["header"]["cluster_id"] != old_cluster_id
        ttl = call(url, "/v3/lease/timetolive", {"ID": lease, "keys": True})
        assert ttl["keys"] == [b64("drill/leased")]
        assert 0 < int(ttl["TTL"]) <= 600
        after = put(url, "drill/new", "after restore")
        assert int(after["header"]["revision"]) == int(before["revision"]) + 1
    except BaseException:
        print(new.logs_tail(40))
        raise
    finally:
        new.stop()
