"""etcdctl's `member` commands on raftmon and on etcd 3.4: the same answers and refusals.

A learner is added to both clusters (never started), promotions and a second learner are
refused with etcd's words, a voter's peer URLs cannot take another member's, and the
learner is removed again. The ids `member add` draws are random: `fresh_ids` names them
by order of appearance, as the mask names the members it knows.
"""

from __future__ import annotations

import re
import time

from lab.procs import free_ports
from tests.etcdctl.conftest import Pair
from tests.etcdctl.ctl import Etcdctl, Ran

HEX_ID = re.compile(r"\b[0-9a-f]{13,16}\b")


def fresh_ids(ran: Ran) -> Ran:
    """Ids the mask does not know (a member just added) -> <new1>, <new2>, ... in order;
    the padding before an id; the new member's port; ETCD_INITIAL_CLUSTER in name order
    (etcdctl prints it in the order of the random ids)."""
    seen: dict[str, str] = {}

    def name(m: re.Match[str]) -> str:
        return seen.setdefault(m.group(0), f"<new{len(seen) + 1}>")

    def loosen(text: str) -> str:
        # etcdctl prints ids with %16x: an id of fewer hex digits gets a space before it
        text = re.sub(r"(Member|cluster) +", r"\1 ", text)
        text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", HEX_ID.sub(name, text))
        return re.sub(
            r'ETCD_INITIAL_CLUSTER="([^"]*)"',
            lambda m: f'ETCD_INITIAL_CLUSTER="{",".join(sorted(m.group(1).split(",")))}"',
            text,
        )

    return Ran(ran.rc, loosen(ran.out), loosen(ran.err))


def member_id(ctl: Etcdctl, position: int) -> str:
    """The hex id of the member at `position` (0-based), as etcdctl takes it."""
    listed = ctl.json("member", "list")["members"]
    url = ctl.members[position].client_url
    return next(f"{int(m['ID']):x}" for m in listed if url in m.get("clientURLs", []))


def settled(ctl: Etcdctl, *args: str) -> Ran:
    """Run `args`; while the answer is "unhealthy cluster" (etcd's strict reconfiguration
    check wants every voter connected for 5 s: a cluster just started is not), retry."""
    ran = ctl(*args)
    for _ in range(30):
        if "unhealthy cluster" not in ran.err:
            break
        time.sleep(0.5)
        ran = ctl(*args)
    return ran


def same(pair: Pair, *per_cluster: tuple[str, ...]) -> Ran:
    """Run the commands per cluster (raftmon's args, etcd's args); masked runs must agree."""
    ours, theirs = (
        fresh_ids(settled(ctl, *args)) for ctl, args in zip(pair.ctls(), per_cluster, strict=True)
    )
    assert ours == theirs, f"raftmon != etcd\n{ours}\n{theirs}"
    return ours


def test_member_add_promote_update_remove_answer_as_etcd(pair: Pair) -> None:
    voters = [member_id(ctl, 1) for ctl in pair.ctls()]
    promoted = same(pair, *(("member", "promote", v) for v in voters))
    assert "can only promote a learner member" in promoted.err

    urls = [f"http://127.0.0.1:{p}" for p in free_ports(4)]
    added = same(
        pair,
        ("member", "add", "learner1", f"--peer-urls={urls[0]}", "--learner"),
        ("member", "add", "learner1", f"--peer-urls={urls[1]}", "--learner"),
    )
    assert added.rc == 0, added
    new_ids = [
        next(
            f"{int(m['ID']):x}" for m in ctl.json("member", "list")["members"] if m.get("isLearner")
        )
        for ctl in pair.ctls()
    ]
    not_ready = same(pair, *(("member", "promote", i) for i in new_ids))
    assert "in sync with leader" in not_ready.err, not_ready
    too_many = same(
        pair,
        ("member", "add", "learner2", f"--peer-urls={urls[2]}", "--learner"),
        ("member", "add", "learner2", f"--peer-urls={urls[3]}", "--learner"),
    )
    assert "too many learner members" in too_many.err, too_many
    taken = same(
        pair,
        *(
            ("member", "update", v, f"--peer-urls={ctl.members[0].peer_url}")
            for ctl, v in zip(pair.ctls(), voters, strict=True)
        ),
    )
    assert "Peer URLs already exists" in taken.err, taken
    removed = same(pair, *(("member", "remove", i) for i in new_ids))
    assert removed.rc == 0, removed
    assert "removed from cluster" in removed.out, removed
    again = same(pair, *(("member", "remove", i) for i in new_ids))
    assert "member not found" in again.err, again
    pair.same("member", "list", rows=True)  # back to the three members on both
