"""Debian's etcdctl 3.4 against raftmon and against etcd 3.4: the same commands, the same output.

Every test runs its commands on both 3-member clusters (fresh for this module, led by
their first member) and compares what etcdctl printed, exit code and errors included,
with only what must differ masked (`tests.etcdctl.ctl`: ids, URLs, terms, raft indexes,
sizes, timings, hashes). Revisions are compared as they are. Each test uses keys of its
own; a test that fails half-way would leave the clusters at different revisions, so
`in_step` puts filler keys into the one behind before the next test (and says so).

etcdctl's lock and elect need no server part of their own (see their tests).
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from urllib.parse import urlsplit

import grpc
import pytest

from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
from etcdproto.gen.etcdserverpb import rpc_pb2_grpc
from lab.procs import wait_until
from tests.etcdctl.conftest import Pair
from tests.etcdctl.ctl import Etcdctl, Ran, T, mask

pytestmark = [pytest.mark.cluster, pytest.mark.tools]


@pytest.fixture(autouse=True)
def in_step(pair: Pair) -> None:
    """Both clusters at the same revision before each test (see the module docstring)."""
    behind = sorted(pair.ctls(), key=Etcdctl.revision)
    gap = behind[1].revision() - behind[0].revision()
    if gap:
        print(f"in_step: {gap} filler puts into {behind[0].cluster.__class__.__name__}")
    for i in range(gap):
        assert behind[0].raw("put", f"/filler/{i}", "x").returncode == 0


# ---- the course's commands and the README's -------------------------------------------


def test_course_commands_put_get_and_serializable_get(pair: Pair) -> None:
    assert pair.same("put", "/foo", "bar") == Ran(0, "OK\n", "")
    assert pair.same("get", "/foo") == Ran(0, "/foo\nbar\n", "")
    assert pair.same("get", "--consistency=s", "/foo") == Ran(0, "/foo\nbar\n", "")
    # through a follower (the first member leads): linearizable and serializable alike
    pair.same("get", "/foo", at=1)
    pair.same("get", "--consistency=s", "/foo", "-w", "json", at=2)
    pair.same("get", "/foo", "-w", "json", at=2)


# ---- put / get / del -------------------------------------------------------------------


def test_put_with_prev_kv_and_ignore_value(pair: Pair) -> None:
    pair.same("put", "/p/a", "1")
    pair.same("put", "/p/a", "2", "--prev-kv")
    pair.same("put", "/p/a", "3", "--prev-kv", "-w", "json")
    pair.same("put", "/p/a", "--ignore-value", "-w", "json")
    pair.same("get", "/p/a", "-w", "fields")


@pytest.mark.parametrize(
    "flags",
    [
        ["/g/", "--prefix"],
        ["/g/", "--prefix", "--keys-only"],
        ["/g/", "--prefix", "--print-value-only"],
        ["/g/b", "--from-key"],
        ["/g/b", "--from-key", "--limit=2"],
        ["/g/", "--prefix", "--limit=2", "-w", "json"],
        ["/g/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"],
        ["/g/", "--prefix", "--sort-by=VALUE", "--order=ASCEND"],
        ["/g/", "--prefix", "--sort-by=VERSION", "--order=DESCEND", "-w", "json"],
        ["/g/", "--prefix", "--sort-by=CREATE", "--order=DESCEND", "--limit=1"],
        ["/g/a", "/g/c"],
        ["/g/", "--prefix", "-w", "fields"],
        ["/g/", "--prefix", "-w", "table"],
        ["/g/nothing"],
        ["/g/nothing", "-w", "json"],
        ["--hex", "/g/a"],
    ],
    ids=lambda flags: " ".join(flags),
)
def test_get_options(pair: Pair, flags: list[str]) -> None:
    if pair.raftmon.raw("get", "/g/a").stdout == "":  # the keys, once for every case
        for ctl in pair.ctls():
            for key, value in [("/g/a", "3"), ("/g/b", "1"), ("/g/c", "2"), ("/g/b", "4")]:
                assert ctl.raw("put", key, value).returncode == 0
    pair.same("get", *flags)


def test_get_at_a_revision_then_after_compaction(pair: Pair) -> None:
    pair.same("put", "/rev/k", "v1")
    first = pair.raftmon.revision()
    pair.same("put", "/rev/k", "v2")
    pair.same("get", "/rev/k", f"--rev={first}")
    pair.same("get", "/rev/k", f"--rev={first}", "-w", "json")
    pair.same("get", "/rev/k", "--rev=1000000")  # a future revision: OutOfRange
    pair.same("compaction", str(first + 1))
    pair.same("get", "/rev/k", f"--rev={first}")  # compacted: OutOfRange
    pair.same("compaction", str(first))  # already compacted
    pair.same("get", "/rev/k", f"--rev={first + 1}")


def test_del_with_prefix_prev_kv_and_from_key(pair: Pair) -> None:
    for key in ("/d/a", "/d/b", "/d/c", "/d/d"):
        pair.same("put", key, "v")
    pair.same("del", "/d/a", "--prev-kv")
    pair.same("del", "/d/b", "/d/c", "-w", "json")
    pair.same("del", "/d/", "--prefix", "--prev-kv", "-w", "json")
    pair.same("del", "/d/nothing")
    pair.same("put", "/e/x", "1")
    pair.same("del", "/e/", "--from-key")  # everything from /e/ on
    pair.same("get", "/", "--from-key", "--keys-only")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["put", "/big/fits-grpc"], "x" * 2_000_000),  # over --max-request-bytes (1.5 MiB)
        (["put", "/big/over-grpc"], "x" * 2_200_000),  # over gRPC's receive limit too
        (["get", ""], None),
        (["put", "", "v"], None),
        (["del", ""], None),
        (["get", "/k", "--rev=-1"], None),
        (["compaction", "0"], None),
        (["lease", "grant", "0"], None),
        (["lease", "grant", "-5"], None),
        (["lease", "grant", "9000000000"], None),
        (["lease", "timetolive", "0"], None),
        (["put", "/k", "v", "--lease=ffffffffffffffff"], None),
        (["put", "/k", "--ignore-value"], None),
        (["put", "/k", "--ignore-lease"], None),
        (["get", "/k", "--limit=-1"], None),
    ],
    ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else "",
)
def test_refusals_read_the_same(pair: Pair, args: list[str], stdin: str | None) -> None:
    pair.same(*args, stdin=stdin)


# ---- txn -------------------------------------------------------------------------------

TXN = """\
value("/t/k") = "v1"
mod("/t/k") > "0"

put /t/k v2
get /t/k

put /t/else x

"""


def test_txn_from_stdin_success_and_failure(pair: Pair) -> None:
    pair.same("put", "/t/k", "v1")
    assert pair.same("txn", "--interactive=false", stdin=TXN).out.startswith("SUCCESS\n")
    failed = pair.same("txn", "--interactive=false", "-w", "json", stdin=TXN)
    assert '"succeeded"' not in failed.out
    nested = 'version("/t/k") = "2"\n\nget /t/ --prefix\ndel /t/else --prev-kv\n\n\n'
    pair.same("txn", "--interactive=false", stdin=nested)
    pair.same("txn", "--interactive=false", "-w", "fields", stdin=nested)
    pair.same("txn", "--interactive=false", stdin='create("/t/k") = "1"\n\n\nput /t/z 1\n\n')
    pair.same("txn", "--interactive=false", stdin="bad compare\n\n\n")  # etcdctl refuses


# ---- watch -----------------------------------------------------------------------------


class Background:
    """An etcdctl command that runs until stopped (watch, lock, elect), in its own
    process against the first member; its stdout read by a thread."""

    def __init__(self, ctl: Etcdctl, *args: str) -> None:
        self.ctl = ctl
        self.proc = subprocess.Popen(
            [ctl.binary, f"--endpoints={ctl.members[0].client_url}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ctl.env,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_lines(self, count: int, timeout: float = T) -> None:
        """Until `count` lines came (bounded: fewer are returned by `read`)."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Empty):
            while len(self.seen) < count:
                self.seen.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))

    def read(self, count: int, timeout: float = T) -> str:
        """The first `count` lines, masked, waiting for them (bounded); then SIGTERM,
        on which etcdctl releases what it holds (a lock, a candidacy) and exits."""
        try:
            self.wait_lines(count, timeout)
        finally:
            self.stop()
        text = "".join(self.seen)
        self.ctl.names.learn_leases(text)
        return mask(text, self.ctl.names)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _watchers(ctl: Etcdctl) -> float:
    """etcd_debugging_mvcc_watcher_total of the first member (etcd and raftmon both
    serve /metrics on the client URL)."""
    with urllib.request.urlopen(ctl.members[0].client_url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return float(line.split()[1])
    return 0.0


WatchThenPut = Callable[[list[str], list[list[str]], int], tuple[str, str]]


def _follows(ctl: Etcdctl, leader: int) -> Callable[[], bool]:
    """Whether every member of `ctl`'s cluster names member id `leader` its leader."""
    return lambda: all(ctl.status(i)["leader"] == leader for i in range(len(ctl.members)))


@pytest.fixture
def watch_then_put(pair: Pair) -> Iterator[WatchThenPut]:
    """Start `etcdctl watch <args>` on both clusters, wait until each member counts the
    watcher, run the puts with etcdctl (another process), return each side's lines."""
    started: list[Background] = []

    def run(args: list[str], puts: list[list[str]], lines: int) -> tuple[str, str]:
        outputs = []
        for ctl in pair.ctls():
            before = _watchers(ctl)
            watching = Background(ctl, "watch", *args)
            started.append(watching)
            wait_until(
                "the member counts the new watcher",
                partial(lambda c, b: _watchers(c) > b, ctl, before),
                timeout=T,
            )
            for put in puts:
                assert ctl.raw(*put).returncode == 0
            outputs.append(watching.read(lines))
        return outputs[0], outputs[1]

    yield run
    for watching in started:
        watching.stop()


def test_watch_prefix_sees_puts_of_another_process(watch_then_put: WatchThenPut) -> None:
    puts = [["put", "/w/a", "1"], ["put", "/w/b", "2"], ["del", "/w/a"], ["put", "/x", "no"]]
    ours, theirs = watch_then_put(["/w/", "--prefix"], puts, 8)
    assert ours == theirs
    assert ours == "PUT\n/w/a\n1\nPUT\n/w/b\n2\nDELETE\n/w/a\n"


def test_watch_from_a_revision_with_prev_kv(pair: Pair, watch_then_put: WatchThenPut) -> None:
    pair.same("put", "/wr/k", "old")
    start = pair.raftmon.revision()
    pair.same("put", "/wr/k", "new")
    args = ["/wr/k", f"--rev={start}", "--prev-kv"]
    ours, theirs = watch_then_put(args, [["put", "/wr/k", "newest"]], 13)
    assert ours == theirs
    # history from `start` (the first put has no previous value), then the live put
    assert ours == "PUT\n/wr/k\nold\nPUT\n/wr/k\nold\n/wr/k\nnew\nPUT\n/wr/k\nnew\n/wr/k\nnewest\n"


def test_watch_as_json(watch_then_put: WatchThenPut) -> None:
    ours, theirs = watch_then_put(["/wj/k", "-w", "json"], [["put", "/wj/k", "v"]], 1)
    assert ours == theirs
    assert '"Events":[{"kv":{"key":"L3dqL2s="' in ours


def test_watch_from_a_compacted_revision_is_canceled(pair: Pair) -> None:
    pair.same("put", "/wc/k", "1")
    old = pair.raftmon.revision()
    pair.same("put", "/wc/k", "2")
    pair.same("compaction", str(old + 1))
    canceled = pair.same("watch", "/wc/k", f"--rev={old}")
    assert "required revision has been compacted" in canceled.err
    pair.same("watch", "/wc/k", f"--rev={old}", "-w", "json")


# ---- lease -----------------------------------------------------------------------------


def test_lease_grant_keepalive_timetolive_list_revoke(pair: Pair) -> None:
    granted = pair.same("lease", "grant", "300")
    placeholder = f"<lease{pair.raftmon.names.leases}>"
    assert granted.out == f"lease {placeholder} granted with TTL(300s)\n"
    lease = {ctl: _lease_hex(ctl, placeholder) for ctl in pair.ctls()}
    for ctl in pair.ctls():
        assert ctl.raw("put", "/lease/k", "v", f"--lease={lease[ctl]}").returncode == 0
    for args in (
        ["keep-alive", "--once"],
        ["keep-alive", "--once", "-w", "json"],
        ["timetolive"],
        ["timetolive", "--keys"],
        ["timetolive", "--keys", "-w", "json"],
    ):
        _both_with_lease(pair, lease, ["lease", *args[:1]], args[1:])
    # Earlier tests' short leases (`lease grant 0`: 2 s) expire on each side at its own
    # 500 ms check: revoke every other lease first, so both list this test's lease alone.
    for ctl in pair.ctls():
        for other in ctl.raw("lease", "list").stdout.split()[3:]:  # after "found N leases"
            if other != lease[ctl]:
                ctl.raw("lease", "revoke", other)  # may have expired meanwhile: not found
    # etcd lists leases in Go map order: compare them sorted
    pair.same("lease", "list", rows=True)
    ours, theirs = (_leases_sorted(ran) for ran in pair.both("lease", "list", "-w", "json"))
    assert ours == theirs
    pair.same("get", "/lease/k", "-w", "json")
    _both_with_lease(pair, lease, ["lease", "revoke"], [])
    pair.same("get", "/lease/k")  # gone with its lease
    _both_with_lease(pair, lease, ["lease", "timetolive"], [])
    _both_with_lease(pair, lease, ["lease", "revoke"], [])  # not found
    _both_with_lease(pair, lease, ["lease", "keep-alive"], ["--once"])  # not found
    pair.same("lease", "grant", "60", "-w", "json")
    pair.same("put", "/lease/nope", "v", "--lease=1234")  # no such lease


def test_lease_keep_alive_stream_renews_until_stopped(pair: Pair) -> None:
    pair.same("lease", "grant", "30")
    placeholder = f"<lease{pair.raftmon.names.leases}>"
    runs = []
    for ctl in pair.ctls():
        lease = _lease_hex(ctl, placeholder)
        runs.append(Background(ctl, "lease", "keep-alive", lease).read(1))
        assert ctl.raw("lease", "revoke", lease).returncode == 0
    assert runs[0] == runs[1]
    assert runs[0] == f"lease {placeholder} keepalived with TTL(30)\n"


def _leases_sorted(ran: Ran) -> Ran:
    """`lease list -w json` with its (masked) leases in order."""

    def sort(m: re.Match[str]) -> str:
        return '"leases":[' + ",".join(sorted(re.findall(r"\{[^}]*\}", m[1]))) + "]"

    return Ran(ran.rc, re.sub(r'"leases":\[(.*?)\]', sort, ran.out), ran.err)


def _lease_hex(ctl: Etcdctl, placeholder: str) -> str:
    return next(
        lit for lit, name in ctl.names.literal.items() if name == placeholder and len(lit) == 16
    )


def _both_with_lease(
    pair: Pair, lease: dict[Etcdctl, str], command: list[str], flags: list[str]
) -> None:
    runs = [ctl(*command, lease[ctl], *flags) for ctl in pair.ctls()]
    assert runs[0] == runs[1], f"etcdctl {' '.join(command + flags)}"


# ---- cluster and maintenance -----------------------------------------------------------


def test_member_list(pair: Pair) -> None:
    pair.same("member", "list", rows=True)
    pair.same("member", "list", "-w", "table", rows=True)
    ours, theirs = (_members_by_position(ctl) for ctl in pair.ctls())
    assert ours == theirs
    ids = [m["ID"] for m in pair.raftmon.json("member", "list")["members"]]
    assert ids == sorted(ids), "etcd lists members by id"


def _members_by_position(ctl: Etcdctl) -> str:
    """`member list -w json`, masked, its members in the order of ctl.members (etcd
    lists them by id, and ids are random)."""
    listed = ctl.json("member", "list")
    position = [m.client_url for m in ctl.members]
    listed["members"].sort(key=lambda m: position.index(m["clientURLs"][0]))
    return mask(json.dumps(listed, separators=(",", ":")), ctl.names)


@pytest.mark.parametrize("output", ["simple", "table", "json"])
def test_endpoint_status(pair: Pair, output: str) -> None:
    pair.same("endpoint", "status", "-w", output, at=0)
    pair.same("endpoint", "status", "-w", output, at=1)
    pair.same("endpoint", "status", "--cluster", "-w", output, rows=True)


@pytest.mark.parametrize("output", ["simple", "table", "json"])
def test_endpoint_health(pair: Pair, output: str) -> None:
    pair.same("endpoint", "health", "-w", output, at=2)
    pair.same("endpoint", "health", "--cluster", "-w", output, rows=True)


def _raise_nospace(ctl: Etcdctl) -> None:
    """Activate NOSPACE for the first member over gRPC (etcdctl cannot raise alarms)."""
    member = ctl.status(0)["header"]["member_id"]
    with grpc.insecure_channel(urlsplit(ctl.members[0].client_url).netloc) as channel:
        rpc_pb2_grpc.MaintenanceStub(channel).Alarm(
            pb.AlarmRequest(
                action=pb.AlarmRequest.ACTIVATE, memberID=member, alarm=pb.AlarmType.NOSPACE
            ),
            timeout=T,
        )


def test_alarm_list_and_disarm(pair: Pair) -> None:
    assert pair.same("alarm", "list") == Ran(0, "", "")
    pair.same("alarm", "list", "-w", "json")
    for ctl in pair.ctls():
        _raise_nospace(ctl)
    assert pair.same("alarm", "list").out == "memberID:<m1-id> alarm:NOSPACE \n"
    pair.same("alarm", "list", "-w", "json")
    pair.same("alarm", "list", "-w", "table")
    pair.same("endpoint", "status", "-w", "json")  # the alarm is in errors
    pair.same("endpoint", "health")
    refused = pair.same("put", "/alarm/k", "v")
    assert refused.err == "Error: etcdserver: mvcc: database space exceeded\n"
    pair.same("get", "/alarm/k")  # reads keep working
    pair.same("alarm", "disarm")
    pair.same("alarm", "list", "-w", "json")
    pair.same("put", "/alarm/k", "v")


def test_compaction_and_physical_compaction(pair: Pair) -> None:
    pair.same("put", "/c/k", "1")
    pair.same("put", "/c/k", "2")
    rev = pair.raftmon.revision()
    pair.same("compaction", str(rev - 1))
    pair.same("compaction", str(rev), "--physical")
    pair.same("compaction", str(rev + 1000))  # a future revision
    pair.same("get", "/c/k", "-w", "json")


def test_defrag_one_member_and_the_cluster(pair: Pair) -> None:
    pair.same("defrag", at=1)
    pair.same("defrag", "--cluster", rows=True)
    pair.same("endpoint", "status", "--cluster", rows=True)


def test_move_leader_to_a_follower_and_back(pair: Pair) -> None:
    terms = {ctl: ctl.status(0)["raftTerm"] for ctl in pair.ctls()}
    ids = {ctl: [ctl.status(i)["header"]["member_id"] for i in range(3)] for ctl in pair.ctls()}
    runs = [ctl.at(0, "move-leader", f"{ids[ctl][1]:x}") for ctl in pair.ctls()]
    assert runs[0] == runs[1]
    assert runs[0].out == "Leadership transferred from <m1-id> to <m2-id>\n"
    for ctl in pair.ctls():
        wait_until(
            "every member follows the second member",
            _follows(ctl, ids[ctl][1]),
            timeout=T,
        )
        assert ctl.status(1)["raftTerm"] == terms[ctl] + 1, "a transfer is one election"
    pair.same("endpoint", "status", "--cluster", rows=True)
    # refused: a follower is asked, then a target that is no member
    pair.same("move-leader", f"{ids[pair.raftmon][2]:x}", at=0)
    runs = [ctl.at(1, "move-leader", "1234") for ctl in pair.ctls()]
    assert runs[0] == runs[1]
    back = [ctl.at(1, "move-leader", f"{ids[ctl][0]:x}") for ctl in pair.ctls()]
    assert back[0] == back[1]
    for ctl in pair.ctls():
        wait_until(
            "every member follows the first member again",
            _follows(ctl, ids[ctl][0]),
            timeout=T,
        )


def test_raft_index_advances_by_the_same_entries(pair: Pair) -> None:
    """Absolute raft indexes differ (etcd's bootstrap entries), but every command
    adds the same number of entries on both, alarm list (a Raft request in etcd) too."""
    before = {ctl: ctl.status(0)["raftIndex"] for ctl in pair.ctls()}
    for args in (
        ["put", "/ri/k", "v"],
        ["get", "/ri/k"],
        ["get", "/ri/k", "--consistency=s"],
        ["alarm", "list"],
        ["endpoint", "health"],
        ["defrag"],
        ["del", "/ri/k"],
    ):
        pair.same(*args, at=0)
    after = {ctl: ctl.status(0)["raftIndex"] for ctl in pair.ctls()}
    assert [after[c] - before[c] for c in pair.ctls()] == [after[pair.etcd] - before[pair.etcd]] * 2


# ---- hashkv, snapshot, lock, elect -----------------------------------------------------


def test_endpoint_hashkv(pair: Pair) -> None:
    hashes = pair.same("endpoint", "hashkv", "--cluster", rows=True)
    assert len({line.split(", ")[1] for line in hashes.out.splitlines()}) == 1, hashes
    pair.same("endpoint", "hashkv", "-w", "json", at=0)
    pair.same("endpoint", "hashkv", "--cluster", "-w", "table", rows=True)


def test_snapshot_save(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> None:
    paths = []
    for ctl in pair.ctls():
        path = tmp_path_factory.mktemp("snapshot") / "snap.db"
        paths.append(path)
        done = ctl.at(0, "snapshot", "save", str(path))
        assert done == Ran(0, f"Snapshot saved at {path}\n", ""), done
        assert path.stat().st_size > 0


# etcdctl's lock and elect are clientv3's concurrency recipes (a lease, a key, Txn and
# Watch), not the v3lock/v3election services, so they work on raftmon already.


def test_lock_runs_a_command_holding_the_lock(pair: Pair) -> None:
    assert pair.same("lock", "/locks/one", "echo", "held").out == "held\n"
    ours, theirs = (_held(ctl, "lock", "/locks/two") for ctl in pair.ctls())
    assert ours == theirs
    assert ours.startswith("/locks/two/<lease")
    pair.same("get", "/locks/", "--prefix")  # released on SIGTERM


def test_elect_campaigns_and_observes(pair: Pair) -> None:
    outputs = []
    for ctl in pair.ctls():
        candidate = Background(ctl, "elect", "/elections/e", "p1")
        try:
            candidate.wait_lines(2)
            observed = _held(ctl, "elect", "-l", "/elections/e", lines=2)
        finally:
            campaigned = candidate.read(2)
        outputs.append((campaigned, observed))
    assert outputs[0] == outputs[1]
    campaigned, observed = outputs[0]
    assert campaigned == observed
    assert campaigned.startswith("/elections/e/<lease")
    assert campaigned.endswith("\np1\n")
    pair.same("get", "/elections/", "--prefix")  # resigned on SIGTERM


def _held(ctl: Etcdctl, *args: str, lines: int = 1) -> str:
    """The first `lines` lines of a command that holds something until stopped."""
    return Background(ctl, *args).read(lines)
