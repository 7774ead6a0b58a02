"""Membership changes as an operator makes them, over etcd 3.4's JSON gateway.

The calls (`/v3/cluster/member/{list,add,remove,update,promote}`) are etcd's own, so
the same functions drive a raftmon cluster and a real etcd one. On top of them,
`MembershipOps` gives a `ProcessCluster` the operator's procedures: add a member (or a
learner) and start it with `--initial-cluster-state existing`, promote it once it has
caught up, remove one, and replace a dead one (remove it, add a fresh member with a new
data dir and new ports, start it, wait until it has caught up). The course's quorum
arithmetic (`quorum`, `failures_tolerated`) lives here too: the scenarios print it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.certs import issue
from lab.children import spawn
from lab.etcd_cluster import EtcdCluster, EtcdMember
from lab.members import placement_flags
from lab.procs import WaitTimeout, free_ports, http_json, wait_until

if TYPE_CHECKING:
    import ssl

    from lab.members import ProcessMember

# etcd's words (server/etcdserver/errors.go) for a promotion the leader refuses because
# the learner's log is behind: worth retrying, unlike every other refusal.
NOT_IN_SYNC = "can only promote a learner member which is in sync with leader"
# etcd's answer to an add or remove while some voter has not been connected to the leader
# for the last 5 s (its HealthInterval; --strict-reconfig-check): retried, briefly.
UNHEALTHY = "unhealthy cluster"
# How often a refused promotion (or an add refused as unhealthy) is retried.
PROMOTE_RETRY_SECONDS = 0.5


class MembershipError(RuntimeError):
    """The cluster refused a membership change; `message` is etcd's error text."""

    def __init__(self, call: str, answer: Any) -> None:
        self.message = str(answer.get("message") or answer.get("error") or answer)
        self.code = answer.get("code") if isinstance(answer, dict) else None
        super().__init__(f"{call}: {self.message}")


@dataclass(frozen=True)
class Member:
    """One entry of `member list`: an unstarted member has no name and no client URLs."""

    id: str  # decimal uint64, as the gateway writes it
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        return bool(self.name)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Member:
        return cls(
            id=str(data.get("ID", "0")),
            name=str(data.get("name", "")),
            peer_urls=tuple(data.get("peerURLs", ())),
            client_urls=tuple(data.get("clientURLs", ())),
            is_learner=bool(data.get("isLearner", False)),
        )


def quorum(voters: int) -> int:
    """Votes needed to elect a leader or commit an entry: a majority of the voters."""
    return voters // 2 + 1


def failures_tolerated(voters: int) -> int:
    """Voters that can fail with the cluster still writable (3 and 4 both tolerate 1)."""
    return voters - quorum(voters)


# ---- the gateway calls ----------------------------------------------------------------------


def _call(
    endpoints: list[str],
    path: str,
    body: dict[str, Any],
    context: ssl.SSLContext | None,
    timeout: float,
) -> dict[str, Any]:
    """POST to the first endpoint that answers; a refusal from the cluster raises.

    A member that cannot be reached (dead, not started yet) is skipped; one that answers
    with an error is not, since every member forwards the change to the leader and would
    say the same.
    """
    unreachable: list[str] = []
    for url in endpoints:
        try:
            answer = http_json(url + path, body, timeout=timeout, context=context)
        except OSError as err:
            unreachable.append(f"{url}: {err}")
            continue
        if not isinstance(answer, dict) or "error" in answer:
            raise MembershipError(path.rsplit("/", 1)[-1], answer)
        return answer
    raise OSError(f"no member answered {path}: " + "; ".join(unreachable))


def _retrying(
    endpoints: list[str],
    path: str,
    body: dict[str, Any],
    context: ssl.SSLContext | None,
    *,
    retry_on: str,
    timeout: float,
) -> tuple[dict[str, Any], int]:
    """`_call`, retried while the refusal says `retry_on` (bounded by `timeout`).

    Returns the answer and how many refusals came first; any other refusal raises at once.
    """
    deadline = time.monotonic() + timeout
    refused = 0
    while True:
        try:
            return _call(endpoints, path, body, context, 10.0), refused
        except MembershipError as err:
            if retry_on not in err.message or time.monotonic() >= deadline:
                raise
            refused += 1
        time.sleep(PROMOTE_RETRY_SECONDS)


def _members(answer: dict[str, Any]) -> list[Member]:
    return [Member.from_json(m) for m in answer.get("members", [])]


def list_members(
    endpoints: list[str], context: ssl.SSLContext | None = None, timeout: float = 5.0
) -> list[Member]:
    return _members(_call(endpoints, "/v3/cluster/member/list", {}, context, timeout))


def add_member(
    endpoints: list[str],
    peer_urls: list[str],
    *,
    learner: bool = False,
    context: ssl.SSLContext | None = None,
    timeout: float = 15.0,
) -> tuple[Member, list[Member]]:
    """`member add`: the new (unstarted) member and the member list that includes it.

    Retried for `timeout` while etcd calls the cluster unhealthy (a voter connected for
    less than 5 s, e.g. just after a start or a removal).
    """
    body: dict[str, Any] = {"peerURLs": peer_urls}
    if learner:
        body["isLearner"] = True
    path = "/v3/cluster/member/add"
    answer, _ = _retrying(endpoints, path, body, context, retry_on=UNHEALTHY, timeout=timeout)
    return Member.from_json(answer["member"]), _members(answer)


def remove_member(
    endpoints: list[str],
    member_id: str,
    context: ssl.SSLContext | None = None,
    timeout: float = 15.0,
) -> list[Member]:
    """`member remove`, retried for `timeout` while etcd calls the cluster unhealthy."""
    path, body = "/v3/cluster/member/remove", {"ID": member_id}
    answer, _ = _retrying(endpoints, path, body, context, retry_on=UNHEALTHY, timeout=timeout)
    return _members(answer)


def update_member(
    endpoints: list[str],
    member_id: str,
    peer_urls: list[str],
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> list[Member]:
    body = {"ID": member_id, "peerURLs": peer_urls}
    return _members(_call(endpoints, "/v3/cluster/member/update", body, context, timeout))


def promote_member(
    endpoints: list[str],
    member_id: str,
    *,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> tuple[list[Member], int]:
    """`member promote`, retried while the leader says the learner is not in sync yet.

    Returns the member list and how many refusals came first. Any other refusal (not a
    learner, unknown member) raises at once; "not in sync" raises once `timeout` passed.
    """
    path, body = "/v3/cluster/member/promote", {"ID": member_id}
    answer, refused = _retrying(
        endpoints, path, body, context, retry_on=NOT_IN_SYNC, timeout=timeout
    )
    return _members(answer), refused


def initial_cluster_for(new: Member, new_name: str, members: list[Member]) -> str:
    """The `--initial-cluster` a new member starts with, as `etcdctl member add` prints it.

    Every member's peer URLs under its name, the new one under `new_name`; other members
    not started yet have no name and are left out (their entry could not be parsed).
    """
    entries = []
    for m in members:
        name = new_name if m.id == new.id else m.name
        if name:
            entries += [f"{name}={url}" for url in m.peer_urls]
    return ",".join(entries)


def join_flags(m: ProcessMember, initial_cluster: str, token: str) -> list[str]:
    """etcd's flags for a member joining a running cluster (fresh data dir, same token)."""
    return placement_flags(m, initial_cluster, token, state="existing")


# ---- the operator's procedures on a cluster of processes --------------------------------------


class MembershipOps:
    """Add, promote, remove and replace members of a `ProcessCluster` it is mixed into.

    The cluster supplies `_new_member(name)` (ports, data dir, log path: nothing started)
    and `_start_joining(member, flags)` (spawn it with `join_flags`); the rest is here.
    Removed members leave `members` (and so the endpoints and the scrape targets) and
    are kept in `removed` for their logs.
    """

    members: list[Any]
    removed: list[Any]
    token: str
    _client_ssl: ssl.SSLContext | None

    # hooks the cluster implements ------------------------------------------------------------
    def _new_member(self, name: str) -> Any:
        raise NotImplementedError

    def _start_joining(self, m: Any, flags: list[str]) -> None:
        raise NotImplementedError

    def _stop_member(self, m: Any) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:  # what the ProcessCluster it is mixed into provides

        def member(self, name: str) -> Any: ...
        def status(self, name: str, timeout: float = 1.0) -> dict[str, Any] | None: ...
        def leader(self) -> str | None: ...

    # ------------------------------------------------------------------------------------------
    def _joins(self) -> dict[str, list[str]]:
        """name -> the join flags of each member added at run time (kept for restarts)."""
        joins: dict[str, list[str]] = self.__dict__.setdefault("_join_flags", {})
        return joins

    def live_endpoints(self) -> list[str]:
        """Client URLs of members that run and are not paused (the ones that can answer)."""
        return [m.client_url for m in self.members if m.alive and not m.paused]

    def member_list(self) -> list[Member]:
        return list_members(self.live_endpoints(), self._client_ssl)

    def member_id(self, name: str) -> str:
        """The cluster's id for one of our members, matched by peer URL (started or not)."""
        peer = self.member(name).peer_url
        for info in self.member_list():
            if peer in info.peer_urls:
                return info.id
        raise KeyError(f"{name} ({peer}) is not in the member list")

    def next_name(self) -> str:
        """The next free name with the cluster's prefix (m4 after m1..m3, even if m3 left)."""
        everyone = [*self.members, *self.removed]
        prefix = everyone[0].name.rstrip("0123456789")
        used = [int(m.name[len(prefix) :]) for m in everyone if m.name[len(prefix) :].isdigit()]
        return f"{prefix}{max(used, default=0) + 1}"

    def voters_and_learners(self) -> tuple[int, int]:
        members = self.member_list()
        learners = sum(1 for m in members if m.is_learner)
        return len(members) - learners, learners

    def add_member(
        self, learner: bool = False, *, start: bool = True, timeout: float = 60.0
    ) -> str:
        """`member add [--learner]`, then start the new member with a fresh data dir.

        Returns its name once every running member lists it: the member that answered
        may have applied the change before the leader did, and etcd 3.4's leader
        promotes a learner its Raft progress does not hold yet without the in-sync check
        (a promote of a never-started learner succeeded: 1 CI run). With `start`, waits
        until it answers and has caught up.
        """
        name = self.next_name()
        m = self._new_member(name)
        added, members = add_member(
            self.live_endpoints(), [m.peer_url], learner=learner, context=self._client_ssl
        )
        self.members.append(m)
        self._joins()[name] = join_flags(m, initial_cluster_for(added, name, members), self.token)

        def listed_everywhere() -> bool | None:
            for url in self.live_endpoints():
                if added.id not in {x.id for x in list_members([url], self._client_ssl)}:
                    return None
            return True

        wait_until(f"{name} is listed by every member", listed_everywhere, timeout, interval=0.1)
        if start:
            self.start_member(name, timeout=timeout)
        return name

    def start_member(self, name: str, timeout: float = 60.0) -> None:
        """Start an added member as `member add` said to, and wait until it caught up."""
        self._start_joining(self.member(name), self._joins()[name])
        self.wait_caught_up(name, timeout=timeout)

    def wait_caught_up(self, name: str, timeout: float = 60.0) -> int:
        """Until `name` has applied what the leader had committed when it first answered,
        and the member list shows it started (its name published).

        Returns that index. A member joining a cluster whose log was compacted catches up
        by snapshot; either way its applied index reaches the leader's.
        """
        deadline = time.monotonic() + timeout
        m = self.member(name)

        def answers() -> dict[str, Any] | None:
            if not m.alive:
                raise RuntimeError(f"{name} exited\n{m.log_tail()}")
            return self.status(name)

        wait_until(f"{name} answers", answers, timeout, interval=0.2, detail=m.log_tail)
        target = self._leader_index()

        def caught_up() -> bool:
            st = self.status(name)
            return st is not None and _applied(st) >= target

        left = max(1.0, deadline - time.monotonic())
        wait_until(f"{name} applies index {target}", caught_up, left, detail=m.log_tail)

        def published() -> bool:  # its name in `member list`: what etcdctl shows as started
            return any(m.peer_url in i.peer_urls and i.started for i in self.member_list())

        left = max(1.0, deadline - time.monotonic())
        wait_until(f"{name} is listed as started", published, left, detail=m.log_tail)
        return target

    def _leader_index(self) -> int:
        lead = wait_until("a leader", self.leader, 20.0, interval=0.1)
        st = self.status(lead)
        if st is None:
            raise WaitTimeout(f"leader {lead} does not answer its status")
        return int(st.get("raftIndex", 0))

    def promote(self, name: str, timeout: float = 60.0) -> int:
        """`member promote`, retried while the learner catches up; returns the refusals.

        Returns once every running member lists it as a voter: the member that
        answered the call may not have applied the promotion yet (etcd 3.4 forwards a
        follower's promote to the leader and answers when the leader has).
        """
        started = time.monotonic()
        member_id = self.member_id(name)
        _, refused = promote_member(
            self.live_endpoints(), member_id, timeout=timeout, context=self._client_ssl
        )

        def voter() -> bool | None:
            """Every running member lists it as a voter (the promoted one included, which
            refuses a learner's requests until it applied its own promotion)."""
            for url in self.live_endpoints():
                listed = {m.id: m for m in list_members([url], self._client_ssl)}
                if member_id not in listed or listed[member_id].is_learner:
                    return None
            return True

        left = max(1.0, timeout - (time.monotonic() - started))
        wait_until(f"{name} is listed as a voter", voter, left, interval=0.1)
        return refused

    def remove(self, name: str) -> None:
        """`member remove`, then stop the process if it still runs and forget its URLs."""
        m = self.member(name)
        others = [u for u in self.live_endpoints() if u != m.client_url]
        member_id = self.member_id(name)
        remove_member(others or self.live_endpoints(), member_id, self._client_ssl)
        self._stop_member(m)
        self.members.remove(m)
        self.removed.append(m)

    def replace(self, name: str, timeout: float = 90.0) -> str:
        """Replace a (dead) member: remove it, add a fresh one, start it, wait for catch-up.

        Remove first, as etcd's runbook says for a failed member: adding first would make
        the dead member count against a larger quorum while the new one starts.
        """
        self.remove(name)
        return self.add_member(learner=False, timeout=timeout)


def _applied(status: dict[str, Any]) -> int:
    """A member's applied Raft index from its status (etcd 3.4: raftAppliedIndex)."""
    return int(status.get("raftAppliedIndex") or status.get("raftIndex") or 0)


class EtcdMembershipCluster(MembershipOps, EtcdCluster):
    """A real etcd 3.4 cluster whose membership can change: the reference the lab's
    membership procedures and scenarios are proven on."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.removed: list[EtcdMember] = []

    def _new_member(self, name: str) -> EtcdMember:
        client, peer = free_ports(2)
        scheme = "https" if self.certs is not None else "http"
        if self.certs is not None:
            self.certs.members[name] = issue(self.certs.ca, self.base_dir / "tls", name, name)
        return EtcdMember(
            name=name,
            client_url=f"{scheme}://127.0.0.1:{client}",
            peer_url=f"{scheme}://127.0.0.1:{peer}",
            data_dir=self.base_dir / f"{name}.etcd",
            log_path=self.base_dir / f"{name}.log",
        )

    def _spawn(self, m: EtcdMember) -> None:
        flags = self._joins().get(m.name)
        if flags is None:  # a founding member: etcd's `new` flags
            super()._spawn(m)
            return
        argv = [
            self.binary,
            *flags,
            "--logger=zap",
            "--log-level=warn",
            *(self.certs.member_flags(m.name) if self.certs else []),
            *self.extra_args,
        ]
        with open(m.log_path, "ab") as out:
            m.proc = spawn(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _start_joining(self, m: EtcdMember, flags: list[str]) -> None:
        shutil.rmtree(m.data_dir, ignore_errors=True)
        self._spawn(m)

    def _stop_member(self, m: EtcdMember) -> None:
        self.kill(m.name)
