"""Debian's etcdctl run against one cluster, its output masked so two clusters compare.

`Etcdctl` runs `etcdctl` (ETCDCTL_API=3) against a raftmon or an etcd cluster and
returns `Ran`: the exit code, stdout and the stderr lines a user reads (clientv3's JSON
log lines dropped), each passed through `mask`. A test runs the same command on both
clusters and asserts the two `Ran`s are equal.

What `mask` hides, and why each differs between two clusters that got the same
commands from a fresh start:
- member, cluster and lease ids, names and URLs (ports): drawn at random per cluster;
  each becomes a placeholder named by the member's position (`<m1-id>`, `<m2-url>`) or
  by the order leases were granted (`<lease1>`), so "the leader is member 1" and "this
  key is on the first lease" still compare;
- raft terms: etcd's bootstrap writes the initial ConfChange entries at term 1, so its
  first leader is elected in term 2; raftmon's members start from an empty log and
  elect theirs in term 1. `test_move_leader` checks a transfer adds one term on both;
- raft indexes: etcd's log also holds those ConfChanges, each member's published
  attributes and the cluster version (8 entries for 3 members), raftmon's does not.
  `test_raft_index_advances_by_the_same_entries` checks equal deltas instead;
- sizes (dbSize, "DB SIZE"): bbolt pages against SQLite pages;
- timings ("took"), and a lease's remaining TTL (whole seconds left, read at a moment);
- hashes: etcd hashes bbolt's key encoding; equal hashes on every member still show
  as one placeholder (`<hash1>` on each line), different ones as two;
- which deadline a timed-out request reports (etcd's server's or etcdctl's): a race.
Revisions are NOT masked: both clusters start at revision 1 and every command moves
them alike, so any difference is a bug.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

from lab.members import ProcessCluster, ProcessMember

T = 30.0  # seconds: every etcdctl run is bounded


@dataclass(frozen=True)
class Ran:
    """One etcdctl run, masked: what the two clusters' runs must agree on."""

    rc: int
    out: str
    err: str

    def rows(self) -> Ran:
        """The same run with its lines sorted: for `--cluster` output, whose order
        is the order members answered (endpoint health) or of their random ids."""
        return Ran(self.rc, _sorted_lines(self.out), _sorted_lines(self.err))


def _sorted_lines(text: str) -> str:
    if text.startswith("[{"):  # -w json of several endpoints: one element per line
        return "\n".join(sorted(_ENDPOINTS.split(text.strip()[1:-1])))
    return "\n".join(sorted(text.splitlines()))


# Between two endpoints' objects in etcdctl's -w json list (masked text is not JSON).
_ENDPOINTS = re.compile(r'(?<=\}),(?=\{"[Ee]ndpoint")')


@dataclass
class Placeholders:
    """Literal strings of one cluster (ids, names, URLs) and what replaces them."""

    literal: dict[str, str] = field(default_factory=dict)
    leases: int = 0
    hashes: dict[str, str] = field(default_factory=dict)

    def add_id(self, value: int, name: str) -> None:
        self.literal[str(value)] = name
        self.literal[f"{value:x}"] = name
        self.literal[f"{value:016x}"] = name

    def add_lease(self, value: int) -> str:
        """`<leaseN>` for a granted lease; 0 is etcd's "no lease" and stays (learning it
        once masked the 0 in a /tmp/pytest-0 path)."""
        if value == 0:
            return "0"
        if str(value) not in self.literal:
            self.leases += 1
            self.add_id(value, f"<lease{self.leases}>")
        return self.literal[str(value)]

    def learn_leases(self, text: str) -> None:
        """Placeholders for the lease ids in `text` not known yet, in order of appearance."""
        for m in _LEASE.finditer(text):
            hex_id, dec_id = m[1] or m[2], m[3]
            if hex_id is not None and hex_id not in self.literal:
                self.add_lease(int(hex_id, 16))
            elif dec_id is not None and dec_id not in self.literal and dec_id != "0":
                self.add_lease(int(dec_id))

    def replace(self, text: str) -> str:
        """Every literal replaced in one pass (a placeholder is never matched again)."""
        if not self.literal:
            return text
        alternatives = "|".join(re.escape(k) for k in sorted(self.literal, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w.])")
        return pattern.sub(lambda m: self.literal[m[0]], text)

    def hash(self, value: str) -> str:
        return self.hashes.setdefault(value, f"<hash{len(self.hashes) + 1}>")


# A lease id: 16 hex digits (%016x) in text, a lock's or election's key suffix (%x),
# or a number in a lease's JSON field.
_LEASE = re.compile(
    r'(?<!\w)([0-9a-f]{16})(?!\w)|(?<=/)([0-9a-f]{10,16})$|"(?:ID|id|lease)":(\d+)',
    re.MULTILINE,
)
# Values that differ for the reasons in the module docstring, by the shape etcdctl prints.
_NUMBER_FIELDS = (
    "raft_term|raftTerm|RaftTerm|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse|"
    "RaftIndex|RaftAppliedIndex|DBSize|DBSizeInUse"
)
_JSON_NUMBER = re.compile(rf'("(?:{_NUMBER_FIELDS})" ?: ?)\d+')
_JSON_HASH = re.compile(r'("hash"|"Hash") ?: ?(\d+)')
_TOOK = re.compile(r'(took = |"took":")[0-9.]+[µnm]?s')
_REMAINING = re.compile(r"remaining\(\d+s\)")
_JSON_TTL = re.compile(r'"ttl":[1-9]\d*')
# endpoint status, simple: "<url>, <id>, 3.4.23, 119 kB, false, false, 1, 2, 2, "
_STATUS_LINE = re.compile(
    r"^(\S+, \S+, [0-9.]+, )[0-9.]+ [kMGT]?B(, \w+, \w+, )\d+, \d+, \d+, ", re.MULTILINE
)
# endpoint hashkv, simple: "<url>, 361903090"
_HASH_LINE = re.compile(r"^(\S+, )(\d+)$", re.MULTILINE)
# A request that outlives etcdctl's --command-timeout: etcd's server holds the same
# deadline (grpc-timeout) and may answer with it just before the client's own fires;
# which of the two etcdctl reports is a race inside etcd itself.
_SERVER_DEADLINE = "rpc error: code = Unknown desc = context deadline exceeded"
_TABLE_MASKED = {"DB SIZE", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "TOOK"}


def mask(text: str, names: Placeholders) -> str:
    """`text` with the values two equal clusters print differently replaced (see above)."""
    text = names.replace(text)
    text = _JSON_NUMBER.sub(r"\1<n>", text)
    text = _JSON_HASH.sub(lambda m: f"{m[1]}:{names.hash(m[2])}", text)
    text = text.replace(_SERVER_DEADLINE, "context deadline exceeded")
    text = _TOOK.sub(r"\1<took>", text)
    text = _REMAINING.sub("remaining(<s>)", text)
    text = _JSON_TTL.sub('"ttl":<s>', text)
    text = _STATUS_LINE.sub(r"\1<size>\2<term>, <index>, <index>, ", text)
    text = _HASH_LINE.sub(lambda m: f"{m[1]}{names.hash(m[2])}", text)
    return _tables(text, names)


def _tables(text: str, names: Placeholders) -> str:
    """Tables with their cells stripped (widths follow the values) and masked by column."""
    out: list[str] = []
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("+-"):
            out.append("+")
            continue
        if not line.startswith("|"):
            out.append(line)
            header = []
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not header:
            header = cells
        else:
            for i, column in enumerate(header):
                if column in _TABLE_MASKED and i < len(cells):
                    cells[i] = f"<{column.lower()}>"
                elif column == "HASH" and i < len(cells):
                    cells[i] = names.hash(cells[i])
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class Etcdctl:
    """etcdctl against one cluster, all its endpoints or one member's."""

    def __init__(self, binary: str, cluster: ProcessCluster[Any]) -> None:
        self.binary = binary
        self.cluster = cluster
        self.names = Placeholders()
        self.env = dict(os.environ, ETCDCTL_API="3")
        self.env.pop("ETCDCTL_ENDPOINTS", None)

    @property
    def members(self) -> list[ProcessMember]:
        return list(self.cluster.members)

    def learn_members(self) -> None:
        """Placeholders for the cluster id and each member's id, name and URLs."""
        listed = self.json("member", "list")
        self.names.add_id(int(listed["header"]["cluster_id"]), "<cluster-id>")
        position = {m.client_url: i + 1 for i, m in enumerate(self.members)}
        for member in listed["members"]:
            n = position[member["clientURLs"][0]]
            self.names.add_id(int(member["ID"]), f"<m{n}-id>")
            self.names.literal[member["name"]] = f"<m{n}-name>"
            self.names.literal[member["clientURLs"][0]] = f"<m{n}-url>"
            self.names.literal[member["peerURLs"][0]] = f"<m{n}-peer-url>"

    def raw(
        self, *args: str, endpoints: list[str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """One unmasked run; `endpoints` defaults to the first member's client URL
        (with several, clientv3 picks one, and the header names whichever answered)."""
        eps = ",".join(endpoints or self.cluster.endpoints[:1])
        return subprocess.run(
            [self.binary, f"--endpoints={eps}", *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            timeout=T,
            check=False,
        )

    def __call__(
        self, *args: str, endpoints: list[str] | None = None, stdin: str | None = None
    ) -> Ran:
        """One run, masked: leases it printed get placeholders first."""
        done = self.raw(*args, endpoints=endpoints, stdin=stdin)
        if args[:1] != ("member",):
            # a member id printed with %16x looks like a lease id; member tests name theirs
            self.names.learn_leases(done.stdout)
        err = "".join(
            line for line in done.stderr.splitlines(keepends=True) if not line.startswith("{")
        )
        return Ran(done.returncode, mask(done.stdout, self.names), mask(err, self.names))

    def at(self, index: int, *args: str, stdin: str | None = None) -> Ran:
        """One run against the member at `index` (0-based) alone."""
        return self(*args, endpoints=[self.members[index].client_url], stdin=stdin)

    def json(self, *args: str, endpoint: int | None = None) -> Any:
        """An unmasked `-w json` answer, decoded (ids and all)."""
        eps = None if endpoint is None else [self.members[endpoint].client_url]
        done = self.raw(*args, "-w", "json", endpoints=eps)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def revision(self) -> int:
        return int(
            self.json("get", "/", "--keys-only", "--limit=1", endpoint=0)["header"]["revision"]
        )

    def status(self, index: int) -> dict[str, Any]:
        [st] = self.json("endpoint", "status", endpoint=index)
        return dict(st["Status"])
