"""v3lock and v3election over the JSON gateway: each behaviour on raftmon and on etcd 3.4.

Every test runs against both (`impl`), so a test that passes on etcd is the spec and
the same test on raftmon is the check. Blocking calls run in a thread and every wait
is bounded; nothing asserts on timings: "not yet" is checked only while another
client provably still holds the lock or the lead.
"""

from __future__ import annotations

import concurrent.futures
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.api.lockjson import TIMEOUT, Stream, grant, keys_under, ok, post
from tests.cluster.etcdjson import b64, http_text, unb64, wait_until
from tests.helpers import running_cluster

IMPLS = ["raftmon", "etcd"]

pytestmark = [pytest.mark.cluster, pytest.mark.tools]


@pytest.fixture(params=IMPLS)
def url(request: pytest.FixtureRequest, both: dict[str, str]) -> str:
    return both[request.param]


@pytest.fixture
def pool() -> Any:
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        yield executor


def lock(url: str, name: str, lease: int = 0) -> dict[str, Any]:
    return ok(url, "/v3/lock/lock", {"name": b64(name), "lease": str(lease)})


def unlock(url: str, key: str) -> dict[str, Any]:
    return ok(url, "/v3/lock/unlock", {"key": key})


def campaign(url: str, name: str, value: str, lease: int = 0) -> dict[str, Any]:
    body = {"name": b64(name), "value": b64(value), "lease": str(lease)}
    return ok(url, "/v3/election/campaign", body)["leader"]  # type: ignore[no-any-return]


def leader_value(url: str, name: str) -> str:
    kv = ok(url, "/v3/election/leader", {"name": b64(name)})["kv"]
    return unb64(kv.get("value", ""))


def wait_for_waiters(url: str, prefix: str, count: int) -> list[str]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (keys := keys_under(url, prefix)) and len(keys) == count and keys,
        timeout=TIMEOUT,
        what=f"{count} keys under {prefix}",
    )


# ---- Lock -----------------------------------------------------------------------------
def test_a_second_locker_gets_the_lock_only_after_the_first_unlocks(
    url: str, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    first = lock(url, "contend")
    second = pool.submit(lock, url, "contend")
    keys = wait_for_waiters(url, "contend/", 2)
    assert not second.done()  # the first still holds the lock
    assert b64(keys[0]) == first["key"]
    released = unlock(url, first["key"])
    got = second.result(timeout=TIMEOUT)
    assert got["key"] == b64(keys[1])
    assert int(got["header"]["revision"]) >= int(released["header"]["revision"])
    unlock(url, got["key"])
    assert keys_under(url, "contend/") == []


def test_waiters_are_served_in_order_and_one_whose_lease_ends_leaves_the_queue(
    url: str,
) -> None:
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        owner = lock(url, "queue")
        middle_lease = grant(url, 60)
        middle = pool.submit(lock, url, "queue", middle_lease)
        wait_for_waiters(url, "queue/", 2)
        last = pool.submit(lock, url, "queue")
        wait_for_waiters(url, "queue/", 3)
        # the middle waiter leaves: the last one now waits for the owner, not for it
        ok(url, "/v3/lease/revoke", {"ID": str(middle_lease)})
        keys = wait_for_waiters(url, "queue/", 2)
        assert not last.done()
        assert not middle.done()  # NB: it does not notice its key is gone (etcd's Mutex)
        unlock(url, owner["key"])
        got = last.result(timeout=TIMEOUT)
        assert got["key"] == b64(keys[1])
        # ... and answers once the lock is free, owning nothing: its key died with its lease
        assert middle.result(timeout=TIMEOUT)["key"] == b64(f"queue/{middle_lease:x}")
        assert keys_under(url, "queue/") == [keys[1]]
        unlock(url, got["key"])


def test_a_lock_is_released_when_its_owners_lease_is_revoked(
    url: str, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    lease = grant(url, 60)
    first = lock(url, "revoked", lease)
    assert unb64(first["key"]) == f"revoked/{lease:x}"
    second = pool.submit(lock, url, "revoked")
    wait_for_waiters(url, "revoked/", 2)
    assert not second.done()
    ok(url, "/v3/lease/revoke", {"ID": str(lease)})
    got = second.result(timeout=TIMEOUT)
    assert keys_under(url, "revoked/") == [unb64(got["key"])]
    unlock(url, got["key"])


def test_a_lock_is_released_when_its_owners_lease_expires(
    url: str, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    lease = grant(url, 1)  # nobody keeps it alive
    lock(url, "expires", lease)
    got = pool.submit(lock, url, "expires").result(timeout=TIMEOUT)
    assert keys_under(url, "expires/") == [unb64(got["key"])]
    unlock(url, got["key"])


def test_a_waiter_that_hangs_up_withdraws_its_key(url: str) -> None:
    first = lock(url, "hangup")
    status, _ = post_or_timeout(url, "/v3/lock/lock", {"name": b64("hangup")}, timeout=1.0)
    assert status == 0  # the client gave up while waiting
    wait_until(
        lambda: keys_under(url, "hangup/") == [unb64(first["key"])],
        timeout=TIMEOUT,
        what="the waiter's key to be deleted",
    )
    unlock(url, first["key"])


def post_or_timeout(url: str, path: str, body: dict[str, Any], timeout: float) -> tuple[int, Any]:
    """POST; (0, None) when the client's own timeout ends the wait first."""
    try:
        return post(url, path, body, timeout=timeout)
    except (TimeoutError, urllib.error.URLError):
        return 0, None


def test_locking_again_with_the_lease_that_holds_it_answers_the_same_key(url: str) -> None:
    lease = grant(url, 60)
    first = lock(url, "again", lease)
    again = lock(url, "again", lease)
    assert again["key"] == first["key"]
    assert again["header"]["revision"] == first["header"]["revision"]  # nothing was written
    ok(url, "/v3/lease/revoke", {"ID": str(lease)})


def test_a_lock_without_a_lease_is_bounded_by_a_new_60s_lease(url: str) -> None:
    got = lock(url, "nolease")
    lease = int(unb64(got["key"]).removeprefix("nolease/"), 16)
    ttl = ok(url, "/v3/lease/timetolive", {"ID": str(lease)})
    assert ttl["grantedTTL"] == "60"
    ok(url, "/v3/lease/revoke", {"ID": str(lease)})
    assert keys_under(url, "nolease/") == []


# ---- Election -------------------------------------------------------------------------
def test_campaign_proclaim_observe_and_resign_hand_the_lead_over_in_order(
    url: str, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    name = "race"
    status, body = post(url, "/v3/election/leader", {"name": b64(name)})
    assert (status, body["message"]) == (500, "election: no leader")
    observe = Stream(url, "/v3/election/observe", {"name": b64(name)})
    try:
        a = campaign(url, name, "a1")
        b = pool.submit(campaign, url, name, "b1")
        wait_for_waiters(url, name + "/", 2)
        assert not b.done()  # a leads
        ok(url, "/v3/election/proclaim", {"leader": a, "value": b64("a2")})
        assert leader_value(url, name) == "a2"
        ok(url, "/v3/election/resign", {"leader": a})
        b_key = b.result(timeout=TIMEOUT)
        assert leader_value(url, name) == "b1"
        status, body = post(url, "/v3/election/proclaim", {"leader": a, "value": b64("a3")})
        assert (status, body["message"]) == (500, "election: not leader")
        seen = observe.wait_for(3)
    finally:
        observe.close()
    assert [unb64(line["result"]["kv"]["value"]) for line in seen] == ["a1", "a2", "b1"]
    assert [line["result"]["kv"]["key"] for line in seen] == [a["key"], a["key"], b_key["key"]]
    ok(url, "/v3/election/resign", {"leader": b_key})
    assert keys_under(url, name + "/") == []


def watchers(url: str) -> float:
    _, text = http_text(url + "/metrics")
    [line] = [x for x in text.splitlines() if x.startswith("etcd_debugging_mvcc_watcher_total")]
    return float(line.split()[1])


def test_an_observer_that_hangs_up_leaves_no_watcher_behind(url: str) -> None:
    wait_until(lambda: watchers(url) == 0, timeout=TIMEOUT, what="no watcher")
    observe = Stream(url, "/v3/election/observe", {"name": b64("hangs-up")})
    try:
        wait_until(lambda: watchers(url) == 1, timeout=TIMEOUT, what="the observer's watcher")
    finally:
        observe.close()
    wait_until(lambda: watchers(url) == 0, timeout=TIMEOUT, what="the watcher to go")


def test_a_leader_whose_lease_is_revoked_loses_the_lead(
    url: str, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    name = "lapsed"
    lease = grant(url, 60)
    a = campaign(url, name, "a", lease)
    assert (a["lease"], int(a["rev"])) == (str(lease), int(a["rev"]))
    b = pool.submit(campaign, url, name, "b")
    wait_for_waiters(url, name + "/", 2)
    ok(url, "/v3/lease/revoke", {"ID": str(lease)})
    b_key = b.result(timeout=TIMEOUT)
    assert leader_value(url, name) == "b"
    status, body = post(url, "/v3/election/proclaim", {"leader": a, "value": b64("again")})
    assert (status, body["message"]) == (500, "election: not leader")
    ok(url, "/v3/election/resign", {"leader": a})  # not the leader: nothing happens
    assert leader_value(url, name) == "b"
    ok(url, "/v3/election/resign", {"leader": b_key})


def test_campaigning_again_with_the_same_lease_reannounces_the_new_value(url: str) -> None:
    name = "again"
    lease = grant(url, 60)
    first = campaign(url, name, "one", lease)
    second = campaign(url, name, "two", lease)
    assert (second["key"], second["rev"]) == (first["key"], first["rev"])
    assert leader_value(url, name) == "two"
    ok(url, "/v3/lease/revoke", {"ID": str(lease)})


# ---- three members --------------------------------------------------------------------
def test_a_lock_held_through_one_member_blocks_a_locker_on_another(tmp_path: Path) -> None:
    with running_cluster(tmp_path, 3) as cluster, concurrent.futures.ThreadPoolExecutor(2) as pool:
        one, two, three = cluster.endpoints
        wait_until(
            lambda: (
                len({ok(u, "/v3/maintenance/status", {})["leader"] for u in (one, two, three)}) == 1
            ),
            timeout=TIMEOUT,
            what="every member to name the same leader",
        )
        first = lock(one, "members")
        second = pool.submit(lock, two, "members")
        observe = Stream(three, "/v3/election/observe", {"name": b64("members-e")})
        try:
            wait_for_waiters(three, "members/", 2)
            assert not second.done()
            unlock(three, first["key"])
            got = second.result(timeout=TIMEOUT)
            assert keys_under(one, "members/") == [unb64(got["key"])]
            lead = campaign(two, "members-e", "on two")
            [seen] = observe.wait_for(1)
        finally:
            observe.close()
        assert seen["result"]["kv"]["key"] == lead["key"]
        assert leader_value(one, "members-e") == "on two"
