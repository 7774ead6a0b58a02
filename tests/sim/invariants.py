"""Raft's safety properties as pure checks over recorded history (Raft paper, Figure 3).

Each checker takes the facts the harness records and returns a list of violations (empty
when the property holds), so a test can assert on it and print what broke.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from node.raft import ConfState, Entry


def chain(prev: int, e: Entry) -> int:
    """Hash of a log prefix ending in `e`, given the hash of the prefix before it."""
    return zlib.crc32(b"%d:%d:" % (e.index, e.term) + e.data, prev)


@dataclass(slots=True)
class History:
    """Facts gathered while the simulation runs; the checkers read (and extend) it."""

    leaders: dict[int, int] = field(default_factory=dict)  # term -> leader id
    # (index, term) -> hash of the whole log prefix ending there, over every log ever persisted
    prefixes: dict[tuple[int, int], int] = field(default_factory=dict)
    applied: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (term, data)
    applied_chain: dict[int, int] = field(default_factory=dict)  # index -> state machine hash
    # Highest committed entry seen: (index, term, term of the member that saw it committed)
    committed: tuple[int, int, int] = (0, 0, 0)
    confs: dict[int, ConfState] = field(default_factory=dict)  # index -> config after its change


def check_election_safety(h: History, term: int, leader: int) -> list[str]:
    """§5.2 Election Safety: at most one leader can be elected in a given term."""
    prev = h.leaders.setdefault(term, leader)
    if prev != leader:
        return [f"election safety: term {term} has leaders {prev} and {leader}"]
    return []


def check_log_matching(h: History, member: int, entries: list[Entry], prev_hash: int) -> list[str]:
    """§5.3 Log Matching: equal (index, term) implies identical logs up to that index.

    `entries` were just persisted by `member` after a prefix hashing to `prev_hash`; every
    log that ever held the same (index, term) must have had the same prefix hash.
    """
    out: list[str] = []
    hv = prev_hash
    for e in entries:
        hv = chain(hv, e)
        seen = h.prefixes.setdefault((e.index, e.term), hv)
        if seen != hv:
            out.append(
                f"log matching: member {member} holds ({e.index}, term {e.term}) with a "
                f"different prefix than another log"
            )
            break
    return out


def check_leader_completeness(
    h: History, member: int, term: int, term_at: int | None, first_index: int
) -> list[str]:
    """§5.4 Leader Completeness: a committed entry is in every later leader's log.

    `term_at` is the leader's term at the highest committed index seen so far (None when the
    index is compacted into its snapshot, which only ever covers committed entries).
    """
    index, eterm, commit_term = h.committed
    if index == 0 or term <= commit_term:
        return []
    if term_at is None and index < first_index:
        return []
    if term_at != eterm:
        return [
            f"leader completeness: leader {member} at term {term} lacks committed entry "
            f"({index}, term {eterm}) (has term {term_at})"
        ]
    return []


def check_state_machine_safety(h: History, member: int, e: Entry, sm_hash: int) -> list[str]:
    """§5.4.3 State Machine Safety: no two members apply different entries at one index."""
    seen = h.applied.setdefault(e.index, (e.term, e.data))
    if seen != (e.term, e.data):
        return [
            f"state machine safety: member {member} applied ({e.index}, term {e.term}, "
            f"{e.data!r}) but another applied (term {seen[0]}, {seen[1]!r})"
        ]
    chained = h.applied_chain.setdefault(e.index, sm_hash)
    if chained != sm_hash:
        return [f"state machine safety: member {member} state differs after index {e.index}"]
    return []


def check_config_agreement(h: History, member: int, index: int, conf: ConfState) -> list[str]:
    """Applying the same log gives the same configuration: every member that applied the conf
    change at `index` is in the same configuration afterwards (state machine safety for the
    membership itself)."""
    seen = h.confs.setdefault(index, conf)
    if seen != conf:
        return [
            f"configuration agreement: member {member} is in {conf} after the change at "
            f"{index}, another member in {seen}"
        ]
    return []


def check_commit_quorum(
    leader: int, index: int, voters: tuple[int, ...], holders: set[int]
) -> list[str]:
    """§5.3 with changing membership: an entry the leader commits is durably held by a majority
    of the voters of the configuration in force at the leader (learners never count).

    `holders` are the members whose persisted log (or snapshot) holds the entry.
    """
    held = sum(1 for v in voters if v in holders)
    if held < len(voters) // 2 + 1:
        return [
            f"commit quorum: leader {leader} committed {index} held by {held} of voters "
            f"{voters} ({sorted(holders)} hold it)"
        ]
    return []
