"""Send each fuzz case to raftmon and to real etcd 3.4, and judge the pair of answers.

Usable from the test (`run`) and by hand against servers already running:

    python -m tests.fuzz.harness --raftmon URL --etcd URL --count 500 --seed 18

A verdict per case: the same status class (2xx/4xx/5xx) as etcd, or an entry of
`tests/fuzz/accepted.py` allowing the pair; raftmon never answers 5xx unless etcd
does; after every raftmon 4xx its revision, keys and leases are what they were.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.fuzz.accepted import (
    difference_for,
    etcd_must_not_see,
    raftmon_must_not_see,
    stale_pending,
)
from tests.fuzz.mutations import Case, Mutator

STREAM_WAIT = 1.0  # seconds a stream may stay silent before it counts as "open"


@dataclass
class Answer:
    cls: str  # "2xx" "4xx" "5xx" "none" "open" "crash" (not sent)
    status: int = 0
    body: bytes = b""

    def __str__(self) -> str:
        text = self.body[:200].decode(errors="replace")
        return f"{self.status or self.cls} {text}".strip()


def _class(status: int) -> str:
    return f"{status // 100}xx"


def send(url: str, case: Case, timeout: float = 20.0) -> Answer:
    """POST the case's bytes; streams wait STREAM_WAIT for headers and a first line."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    wait = STREAM_WAIT if case.seed.stream else timeout
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=wait)
    try:
        conn.request(
            "POST", case.path, body=case.body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        if case.seed.stream and resp.status == 200:
            try:
                return Answer("2xx", 200, resp.readline())
            except TimeoutError:
                return Answer("open", 200)
        return Answer(_class(resp.status), resp.status, resp.read())
    except TimeoutError:
        if case.seed.stream:
            return Answer("open")
        raise
    except (http.client.HTTPException, OSError):  # reset, refused, closed early
        return Answer("none")
    finally:
        conn.close()


def post_json(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body))
        out = json.loads(conn.getresponse().read())
        assert isinstance(out, dict), out
        return out
    finally:
        conn.close()


@dataclass(frozen=True)
class State:
    """What a refused request must not move: revision, every key, the set of leases."""

    revision: str
    keys: str
    leases: frozenset[str]

    def moved_to(self, after: State) -> str:
        """ "" when `after` is this state (leases may expire meanwhile, never appear)."""
        if (after.revision, after.keys) != (self.revision, self.keys):
            return f"revision/keys {self.revision}/{self.keys} -> {after.revision}/{after.keys}"
        if after.leases - self.leases:
            return f"new leases {sorted(after.leases - self.leases)}"
        return ""


def fingerprint(url: str) -> State:
    status = post_json(url, "/v3/maintenance/status", {})
    everything = post_json(url, "/v3/kv/range", {"key": "AA==", "range_end": "AA=="})
    everything.pop("header", None)
    leases = post_json(url, "/v3/lease/leases", {}).get("leases", [])
    digest = hashlib.sha256(json.dumps(everything, sort_keys=True).encode()).hexdigest()
    return State(
        str(status["header"]["revision"]),
        digest[:16],
        frozenset(str(x.get("ID")) for x in leases),
    )


@dataclass
class Report:
    seed: int
    total: int = 0
    same_class: int = 0
    same_status: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    not_sent: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"seed {self.seed}: of {self.total} seeded mutations, {self.same_class} get "
            f"etcd's status class ({self.same_class / max(1, self.total):.1%}), "
            f"{self.same_status} its exact status; {sum(self.accepted.values())} accepted "
            f"differences ({self.not_sent} not sent to etcd: they kill etcd 3.4); "
            f"{len(self.failures)} failures"
        ]
        lines += [f"  accepted x{n}: {reason[:110]}" for reason, n in self.accepted.items()]
        return "\n".join(lines)


def judge(case: Case, etcd: Answer, raftmon: Answer) -> tuple[bool, str]:
    """(counted as same class, problem or "")."""
    same = etcd.cls == raftmon.cls or (
        {etcd.cls, raftmon.cls} <= {"2xx", "open"} and case.seed.stream
    )
    diff = None if same else difference_for(case, etcd.cls, raftmon.cls)
    pending = diff is not None and bool(diff.pending)
    if raftmon.cls == "5xx" and etcd.cls != "5xx" and not pending:
        return same, f"raftmon 5xx where etcd answered {etcd.cls}"
    if raftmon.cls == "none":
        return same, "raftmon answered nothing"
    stale = stale_pending(case, etcd.cls, raftmon.cls)
    if stale is not None:
        return same, f"fixed, remove its pending entry from tests/fuzz/accepted.py: {stale.pending}"
    if same:
        return True, ""
    if diff is None:
        return False, f"status class differs (etcd {etcd.cls}, raftmon {raftmon.cls})"
    return False, ""


def run(
    raftmon_url: str,
    etcd_url: str,
    seed: int,
    count: int,
    etcd_alive: Callable[[], bool] | None = None,
    restart_etcd: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
) -> Report:
    """Replay `count` cases from `seed` against both; every problem lands in `failures`."""
    report = Report(seed)
    cases = Mutator(random.Random(seed)).cases(count)
    for i, case in enumerate(cases):
        report.total += 1
        before = fingerprint(raftmon_url)
        crash = etcd_must_not_see(case)
        if crash is not None:
            etcd = Answer("crash")
            report.not_sent += 1
        else:
            etcd = send(etcd_url, case)
            if etcd.cls == "none" and etcd_alive is not None and not etcd_alive():
                report.failures.append(
                    f"#{i} etcd 3.4 died; add it to tests/fuzz/accepted.py:\n  {case.show()}"
                )
                if restart_etcd is not None:
                    restart_etcd()
                continue
        poison = raftmon_must_not_see(case)
        if poison is not None:
            report.accepted["PENDING " + poison.pending] += 1
            continue
        raftmon = send(raftmon_url, case)
        same, problem = judge(case, etcd, raftmon)
        moved = before.moved_to(fingerprint(raftmon_url)) if raftmon.cls == "4xx" else ""
        if moved:
            problem = (problem + "; " if problem else "") + f"a refused request changed {moved}"
        if same:
            report.same_class += 1
            report.same_status += int(etcd.status == raftmon.status)
        elif not problem:
            diff = difference_for(case, etcd.cls, raftmon.cls)
            assert diff is not None
            report.accepted[("PENDING " + diff.pending) if diff.pending else diff.reason] += 1
        if problem:
            report.failures.append(
                f"#{i} {problem}\n  {case.show()}\n  etcd:    {etcd}\n  raftmon: {raftmon}"
            )
            log(report.failures[-1])
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raftmon", required=True)
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    report = run(args.raftmon, args.etcd, args.seed, args.count)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
