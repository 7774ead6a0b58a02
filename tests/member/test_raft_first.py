"""Raft first, aiohttp later: a member connects its peers and elects a leader before it
imports aiohttp, and a request on its peer port that arrives before then is answered.

Real processes: `RAFTMON_HTTP_SIDE_AFTER_LEADER_SECONDS` holds each member's HTTP side
back until it knows a leader, and the member logs, when it imports it, whether aiohttp
was already in `sys.modules` and who the leader was.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab.cluster import LocalCluster
from node.member.serve import HTTP_SIDE_AFTER_LEADER_ENV
from node.transport.peerclient import MEMBER_INFO_PATH
from tests.helpers import FAST


def imported_lines(log: Path) -> list[dict[str, str]]:
    lines = log.read_text(errors="replace").splitlines()
    return [json.loads(x) for x in lines if '"imported the HTTP side"' in x]


def raft_core_lines(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    records = [json.loads(x) for x in lines if x.startswith("{")]
    return [
        str(r.get("msg", "")) for r in records if str(r.get("caller", "")).startswith("core.py")
    ]


def test_members_elect_a_leader_before_aiohttp_and_answer_early_peer_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HTTP_SIDE_AFTER_LEADER_ENV, "30")
    cluster = LocalCluster(tmp_path, 3, extra_args=list(FAST))
    answers: list[int | str] = []

    def ask_member_info() -> None:
        # Sent as soon as the port accepts, while the member is still looking for a leader.
        url = cluster.members[0].peer_url + MEMBER_INFO_PATH
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    answers.append(resp.status)
                    return
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError):
                    answers.append(repr(exc))
                    return
                time.sleep(0.005)  # not listening yet

    asker = threading.Thread(target=ask_member_info, daemon=True)
    try:
        cluster.start(wait=False)
        asker.start()
        cluster.wait_healthy(timeout=60)
        asker.join(timeout=35)
        lines = {m.name: imported_lines(m.log_path) for m in cluster.members}
        raft_lines = {m.name: raft_core_lines(m.log_path) for m in cluster.members}
    except BaseException:
        print(cluster.logs_tail())
        raise
    finally:
        cluster.stop()
    assert answers == [200]
    leaders = set()
    for name, found in lines.items():
        assert len(found) == 1, f"{name}: {found}"
        assert found[0]["aiohttp-imported-before"] == "false", name
        assert found[0]["leader"] != "0", f"{name} imported the HTTP side without a leader"
        leaders.add(found[0]["leader"])
    assert len(leaders) == 1
    # The Raft core's own lines reach each member's log, as etcd's raft package's do.
    elected = [
        n for n, msgs in raft_lines.items() if any("became leader at term" in x for x in msgs)
    ]
    assert len(elected) == 1, raft_lines
    assert all(any("became follower at term" in x for x in msgs) for msgs in raft_lines.values())
