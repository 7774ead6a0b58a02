"""Where etcd 3.4's gateway answers carry no header (or a header without a revision).

etcd's maintenance server returns the alarm applier's answer as it is (no header), and a
watcher canceled because its start revision was compacted gets a header with no
revision. Clients that read `header.revision` unconditionally break on both; raftmon
answers the same shapes.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cluster.etcdjson import b64, call, put
from tests.helpers import require_tool

pytestmark = [pytest.mark.tools]


def test_an_alarm_list_has_no_header_as_etcds(both: dict[str, str]) -> None:
    answers = {}
    for name, url in both.items():
        raise_nospace = {"action": "ACTIVATE", "memberID": "1", "alarm": "NOSPACE"}
        raised = call(url, "/v3/maintenance/alarm", raise_nospace)
        listed = call(url, "/v3/maintenance/alarm", {})
        call(url, "/v3/maintenance/alarm", {**raise_nospace, "action": "DEACTIVATE"})
        answers[name] = (raised, listed, call(url, "/v3/maintenance/alarm", {}))
    assert answers["raftmon"] == answers["etcd"]
    assert answers["etcd"][1] == {"alarms": [{"memberID": "1", "alarm": "NOSPACE"}]}


def test_a_watch_canceled_by_compaction_has_no_header_revision(both: dict[str, str]) -> None:
    curl = require_tool("curl")
    canceled = {}
    for name, url in both.items():
        revs = [int(put(url, "/hdr/w", str(i))["header"]["revision"]) for i in range(3)]
        call(url, "/v3/kv/compaction", {"revision": str(revs[-1])})
        body = {"create_request": {"key": b64("/hdr/w"), "start_revision": str(revs[0])}}
        out = subprocess.run(
            [
                curl,
                "-sN",
                "--max-time",
                "2",
                "-X",
                "POST",
                url + "/v3/watch",
                "-d",
                json.dumps(body),
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        lines = [json.loads(line)["result"] for line in out.splitlines() if line.strip()]
        canceled[name] = next(r for r in lines if r.get("canceled"))
        assert canceled[name]["compact_revision"] == str(revs[-1]), (name, canceled[name])
    for name, result in canceled.items():
        assert "revision" not in result["header"], (name, result)
        assert set(result) == {"header", "canceled", "compact_revision"}, (name, result)
