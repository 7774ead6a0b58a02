"""/v3/lock and /v3/election side by side: the same calls on raftmon and etcd 3.4, the
same answers (status and JSON), member ids, terms and lease ids masked.

Both members are fresh for this module and see the same calls in the same order, so
revisions are compared as they are.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from tests.api.lockjson import TIMEOUT, Masker, Stream, grant, keys_under, post
from tests.cluster.etcdjson import b64, http_text, post_status, wait_until

Answer = tuple[str, int, Any]

pytestmark = [pytest.mark.cluster, pytest.mark.tools]


class Script:
    """Runs calls on one implementation and records (label, status, masked body)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.mask = Masker()
        self.answers: list[Answer] = []

    def record(self, label: str, answer: tuple[int, Any]) -> Any:
        status, body = answer
        self.answers.append((label, status, self.mask(body)))
        return body

    def call(self, label: str, path: str, body: dict[str, Any]) -> Any:
        return self.record(label, post(self.url, path, body))

    def raw(self, label: str, path: str, body: bytes) -> Any:
        return self.record(label, post_status(self.url + path, body))


def wait_for_waiters(url: str, prefix: str, count: int) -> None:
    wait_until(
        lambda: len(keys_under(url, prefix)) == count,
        timeout=TIMEOUT,
        what=f"{count} keys under {prefix}",
    )


def lock_and_election_series(url: str) -> dict[str, float]:
    """The nonzero /metrics samples of the v3lock and v3election services, by name and
    labels (the exporter also shows a zero OK count where etcd has no series yet)."""
    status, text = http_text(url + "/metrics")
    assert status == 200
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {
        name: float(value)
        for name, value in samples
        if ("v3lockpb" in name or "v3electionpb" in name) and float(value)
    }


def test_calls_are_counted_from_the_first_one_as_etcd_counts_them(both: dict[str, str]) -> None:
    # first in the module: neither member has served a lock or election call yet
    for url in both.values():
        text = http_text(url + "/metrics")[1]
        assert "v3lockpb" not in text
        assert "v3electionpb" not in text
    for url in both.values():
        _, got = post(url, "/v3/lock/lock", {"name": b64("counted")})
        post(url, "/v3/lock/unlock", {"key": got["key"]})
        post(url, "/v3/lock/lock", {"name": b64("counted"), "lease": "999"})  # Unknown
        post(url, "/v3/election/leader", {"name": b64("counted")})  # Unknown: no leader
    ours = lock_and_election_series(both["raftmon"])
    assert ours == lock_and_election_series(both["etcd"])
    started = 'grpc_server_started_total{grpc_method="Lock",grpc_service="v3lockpb.Lock",'
    assert ours[started + 'grpc_type="unary"}'] == 2


def lock_script(url: str) -> list[Answer]:
    s = Script(url)
    first = s.call("lock, free", "/v3/lock/lock", {"name": b64("L")})
    s.record("grant", (200, {"ID": str(grant(url, 60, 0x1234))}))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(post, url, "/v3/lock/lock", {"name": b64("L"), "lease": "4660"})
        wait_for_waiters(url, "L/", 2)
        # oldest first: lease ids (hence key order) differ between the two
        both_keys = {"key": b64("L/"), "range_end": b64("L0"), "sort_target": "CREATE"}
        s.call("both keys", "/v3/kv/range", both_keys)
        s.call("unlock the owner", "/v3/lock/unlock", {"key": first["key"]})
        s.record("lock, after waiting", waiting.result(timeout=TIMEOUT))
    s.call("lock, same lease again", "/v3/lock/lock", {"name": b64("L"), "lease": "4660"})
    s.call("lock, unknown lease", "/v3/lock/lock", {"name": b64("L"), "lease": "999"})
    s.call("unlock, no such key", "/v3/lock/unlock", {"key": b64("none")})
    s.call("unlock, no key", "/v3/lock/unlock", {})
    s.call("lock, no name", "/v3/lock/lock", {})
    s.call("lock, v3beta", "/v3beta/lock/lock", {"name": b64("B")})
    s.raw("lock, name not bytes", "/v3/lock/lock", b'{"name": 5}')
    s.raw("lock, lease not a number", "/v3/lock/lock", b'{"lease": "x"}')
    s.raw("lock, bad base64", "/v3/lock/lock", b'{"name": "!!"}')
    s.raw("lock, not JSON", "/v3/lock/lock", b"lock please")
    s.raw("unlock, key not bytes", "/v3/lock/unlock", b'{"key": {}}')
    return s.answers


def election_script(url: str) -> list[Answer]:
    s = Script(url)
    name = {"name": b64("E")}
    s.call("leader, none yet", "/v3/election/leader", name)
    observe = Stream(url, "/v3/election/observe", name)
    try:
        a = s.call("campaign, free", "/v3/election/campaign", {**name, "value": b64("a")})["leader"]
        # Each announcement is awaited before the next write: a late observer may skip
        # a value (etcd's Observe promises only the latest) and date a late one later.
        observe.wait_for(1)
        s.record("grant", (200, {"ID": str(grant(url, 60, 0x2345))}))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            body = {**name, "value": b64("b"), "lease": str(0x2345)}
            waiting = pool.submit(post, url, "/v3/election/campaign", body)
            wait_for_waiters(url, "E/", 2)
            s.call("leader, a", "/v3/election/leader", name)
            s.call("proclaim a2", "/v3/election/proclaim", {"leader": a, "value": b64("a2")})
            observe.wait_for(2)
            s.call("proclaim, no leader key", "/v3/election/proclaim", {"value": b64("x")})
            s.call("proclaim, empty leader key", "/v3/election/proclaim", {"leader": {}})
            s.call("resign, no leader key", "/v3/election/resign", {})
            s.call("resign, empty leader key", "/v3/election/resign", {"leader": {}})
            s.call("resign a", "/v3/election/resign", {"leader": a})
            b = s.record("campaign, after waiting", waiting.result(timeout=TIMEOUT))["leader"]
        s.call("leader, b", "/v3/election/leader", name)
        observe.wait_for(3)
        s.call("proclaim, a again", "/v3/election/proclaim", {"leader": a, "value": b64("a3")})
        s.call("resign, a again", "/v3/election/resign", {"leader": a})
        again = {**name, "value": b64("b2"), "lease": str(0x2345)}
        s.call("campaign b, same lease", "/v3/election/campaign", again)
        lines = observe.wait_for(4)
        s.record("observe", (observe.status, lines))
        s.call("resign b", "/v3/election/resign", {"leader": b})
    finally:
        observe.close()
    s.raw("campaign, name not bytes", "/v3/election/campaign", b'{"name": 5}')
    s.raw("proclaim, leader not a message", "/v3/election/proclaim", b'{"leader": 5}')
    s.raw("proclaim, rev not a number", "/v3/election/proclaim", b'{"leader": {"rev": "x"}}')
    s.raw("leader, bad base64", "/v3/election/leader", b'{"name": "!!"}')
    s.raw("observe, bad body", "/v3/election/observe", b'{"name": 5}')
    return s.answers


@pytest.mark.parametrize("script", [lock_script, election_script], ids=["lock", "election"])
def test_the_same_calls_get_the_same_answers_as_from_etcd(
    both: dict[str, str], script: Any
) -> None:
    ours, theirs = script(both["raftmon"]), script(both["etcd"])
    assert [a[0] for a in ours] == [a[0] for a in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine == reference
