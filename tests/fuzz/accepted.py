"""Where raftmon may answer differently from etcd 3.4.23 in the gateway fuzz, and why.

Each entry matches a request by endpoint and mutation label (regular expressions over
`Case.path` and `Case.label`) and names the status classes allowed on each side:
"2xx", "4xx", "5xx", "none" (etcd closed the connection without an answer) and
"open" (a stream that answered nothing yet). `send_to_etcd=False` marks requests
that kill the etcd 3.4 process: they are not sent to it, and raftmon must still
answer within the classes listed. No entry may allow a raftmon 5xx that etcd does
not answer too - except a `pending` one.

`pending` entries name a raftmon bug whose fix belongs to another change (the owner
and the fix are in the text). They allow raftmon's current wrong answer so the rest
of the fuzz keeps guarding, and `send_to_raftmon=False` keeps a request that would
kill the member away from it. A pending entry whose request now gets an answer it
does not list fails the run ("fixed: remove the entry"), so none outlives its fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.fuzz.mutations import Case


@dataclass(frozen=True)
class Difference:
    endpoint: str
    mutation: str
    etcd: frozenset[str]
    raftmon: frozenset[str]
    reason: str
    send_to_etcd: bool = True
    pending: str = ""  # who fixes the raftmon bug this entry tolerates, and how
    send_to_raftmon: bool = True

    def matches(self, case: Case) -> bool:
        return bool(re.fullmatch(self.endpoint, case.path)) and bool(
            re.search(self.mutation, case.label)
        )


def _classes(*names: str) -> frozenset[str]:
    return frozenset(names)


STREAMS = r"/v3/(watch|lease/keepalive)"

# Not in the table because the mutator never sends it: {"action":"ACTIVATE","memberID":"0"}
# (or action 1) to /v3/maintenance/alarm kills etcd 3.4.23 with a fatal bolt error
# ("failed to write to a bucket ... key required"), and again on every restart while it
# replays the entry; raftmon answers 200.

DIFFERENCES: list[Difference] = [
    Difference(
        endpoint=r"/v3/kv/(range|txn)",
        mutation=r"^enum-out-of-range:.*sort_target=",
        etcd=_classes("crash"),
        raftmon=_classes("4xx"),
        reason=(
            "etcd 3.4 dereferences a nil sorter for a sort_target outside the enum and the "
            "process dies (a txn that writes would crash it again on replay); etcd 3.5 "
            "answers 'etcdserver: invalid sort option' (InvalidArgument), as raftmon must"
        ),
        send_to_etcd=False,
    ),
    Difference(
        endpoint=r"/v3/maintenance/alarm",
        mutation=r"^enum-out-of-range:action=",
        etcd=_classes("crash"),
        raftmon=_classes("2xx", "4xx"),
        reason=(
            "etcd 3.4 returns a nil AlarmResponse for an unknown action and the gateway "
            "crashes the process marshalling it; raftmon answers the empty alarm list"
        ),
        send_to_etcd=False,
    ),
    Difference(
        endpoint=r"/v3/kv/txn",
        mutation=r"^oneof:txn=null-(op|compare)$|^type:(compare|success|failure|"
        r"success\.0\.request_txn\.success)=array-of-null$"
        r"|^duplicate:(compare|success|failure)=",
        etcd=_classes("none"),
        raftmon=_classes("4xx"),
        reason=(
            "a null element in compare/success/failure becomes a nil message; etcd's "
            "gateway panics marshalling it and drops the connection without an answer; "
            "raftmon reads it as the empty message and answers etcd's error for that "
            "('key is not provided' / 'key not found')"
        ),
    ),
    Difference(
        endpoint=r"/v3/kv/txn",
        mutation=r"^oneof:txn=two-(ops|targets)$",
        etcd=_classes("2xx"),
        raftmon=_classes("4xx"),
        reason=(
            "two members of one oneof (request_put and request_range in one RequestOp, "
            "or version and value in one Compare): jsonpb keeps whichever Go's map "
            "iteration visits last, a different one from request to request; raftmon "
            "refuses the ambiguous request instead of running a coin flip"
        ),
    ),
    Difference(
        endpoint=STREAMS,
        mutation=r".",
        etcd=_classes("5xx"),
        raftmon=_classes("4xx"),
        reason=(
            "etcd's streaming gateway returns a body decode error as gRPC Unknown (HTTP "
            "500, code 2) with jsonpb's message; raftmon says the same message as "
            "InvalidArgument (HTTP 400, code 3), as the unary calls do"
        ),
    ),
    Difference(
        endpoint=STREAMS,
        mutation=r"^syntax:empty=body$",
        etcd=_classes("open"),
        raftmon=_classes("4xx"),
        reason=(
            "an empty stream body: etcd waits for a first message that cannot come; "
            "raftmon answers 'unexpected EOF' at once"
        ),
    ),
    Difference(
        endpoint=STREAMS,
        mutation=r"^syntax:not-object=null$",
        etcd=_classes("open", "2xx"),
        raftmon=_classes("4xx"),
        reason=(
            "a JSON null as a stream message: etcd reads it as an empty request (a watch "
            "waits, a keep-alive renews lease 0); raftmon answers 'unexpected EOF'"
        ),
    ),
]


def difference_for(case: Case, etcd: str, raftmon: str) -> Difference | None:
    """The entry that allows this pair of answers, if any."""
    for diff in DIFFERENCES:
        if diff.matches(case) and etcd in diff.etcd and raftmon in diff.raftmon:
            return diff
    return None


def etcd_must_not_see(case: Case) -> Difference | None:
    """The entry saying this request kills etcd 3.4, if any."""
    for diff in DIFFERENCES:
        if not diff.send_to_etcd and diff.matches(case):
            return diff
    return None


def raftmon_must_not_see(case: Case) -> Difference | None:
    """A pending entry saying this request still kills a raftmon member, if any."""
    for diff in DIFFERENCES:
        if not diff.send_to_raftmon and diff.matches(case):
            return diff
    return None


def stale_pending(case: Case, etcd: str, raftmon: str) -> Difference | None:
    """A pending entry for this request whose bug no longer shows: it must go."""
    for diff in DIFFERENCES:
        if diff.pending and diff.send_to_raftmon and diff.matches(case) and etcd in diff.etcd:
            if raftmon not in diff.raftmon and difference_for(case, etcd, raftmon) is None:
                return diff
    return None
