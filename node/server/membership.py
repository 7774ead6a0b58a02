"""The cluster's members as this server knows them (etcd's membership.RaftCluster).

`Membership` is the in-memory view of the backend's member table: loaded at start,
changed only by applied conf-change entries and published attributes, reloaded after
a snapshot install. Its checks are etcd's, with etcd's words:

- `validate` is ValidateConfigurationChange, run when a conf change is APPLIED (every
  member runs it on the same state, so every member accepts or refuses alike);
- `ready_to_add_voter` / `ready_to_remove_voter` / `ready_to_promote` are the
  --strict-reconfig-check quorum rules, run by the member that PROPOSES a change.

A conf change carries the member in its context as JSON (etcd's ConfigChangeContext).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from node.errors import (
    ErrMemberExist,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrPeerURLExist,
    ErrTooManyLearners,
)
from node.mvcc.members import MemberRecord
from node.raft import ConfChange, ConfChangeType, ConfState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from node.errors import EtcdError

MAX_LEARNERS = 1  # etcd 3.4's limit on learners in a cluster

CCT = ConfChangeType


@dataclass(frozen=True, slots=True)
class ChangeContext:
    """What a conf change entry carries besides the member id (etcd's ConfigChangeContext)."""

    member: MemberRecord
    is_promote: bool = False

    def encode(self) -> bytes:
        body = json.loads(self.member.to_json())
        body["id"] = f"{self.member.id:x}"
        body["isPromote"] = self.is_promote
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, member_id: int, data: bytes) -> ChangeContext:
        """The context of `member_id`'s change; a removal carries none (empty member)."""
        if not data:
            return cls(MemberRecord(member_id))
        body = json.loads(data)
        return cls(MemberRecord.from_json(member_id, json.dumps(body)), bool(body.get("isPromote")))


class Membership:
    """Members, learners and removed ids of the cluster; one per server."""

    def __init__(self, members: Iterable[MemberRecord], removed: Iterable[int] = ()) -> None:
        self.members: dict[int, MemberRecord] = {m.id: m for m in members}
        self.removed: set[int] = set(removed)

    # ---- reading -----------------------------------------------------------------------
    def get(self, member_id: int) -> MemberRecord | None:
        return self.members.get(member_id)

    def sorted(self) -> list[MemberRecord]:
        return [self.members[i] for i in sorted(self.members)]

    def voters(self) -> list[MemberRecord]:
        return [m for m in self.sorted() if not m.is_learner]

    def learners(self) -> list[MemberRecord]:
        return [m for m in self.sorted() if m.is_learner]

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=tuple(m.id for m in self.voters()),
            learners=tuple(m.id for m in self.learners()),
        )

    def is_learner(self, member_id: int) -> bool:
        m = self.members.get(member_id)
        return m is not None and m.is_learner

    def peer_urls_in_use(self, *, except_id: int = 0) -> set[str]:
        return {u for m in self.members.values() if m.id != except_id for u in m.peer_urls}

    # ---- etcd's ValidateConfigurationChange ---------------------------------------------
    def validate(self, cc: ConfChange, ctx: ChangeContext) -> EtcdError | None:
        """Why this applied change must change nothing, or None when it may apply."""
        mid = cc.node_id
        if mid in self.removed:
            return ErrMemberNotFound()  # etcd: membership.ErrIDRemoved, answered as not found
        current = self.members.get(mid)
        if cc.type in (CCT.ConfChangeAddNode, CCT.ConfChangeAddLearnerNode):
            if ctx.is_promote:
                if current is None:
                    return ErrMemberNotFound()
                if not current.is_learner:
                    return ErrMemberNotLearner()
                return None
            if current is not None:
                return ErrMemberExist()
            if self.peer_urls_in_use() & set(ctx.member.peer_urls):
                return ErrPeerURLExist()
            if cc.type == CCT.ConfChangeAddLearnerNode and len(self.learners()) >= MAX_LEARNERS:
                return ErrTooManyLearners()
            return None
        if current is None:
            return ErrMemberNotFound()
        if cc.type == CCT.ConfChangeUpdateNode and (
            self.peer_urls_in_use(except_id=mid) & set(ctx.member.peer_urls)
        ):
            return ErrPeerURLExist()
        return None

    # ---- applying ----------------------------------------------------------------------
    def apply(self, cc: ConfChange, ctx: ChangeContext) -> MemberRecord | None:
        """Apply a validated change; returns the member as saved (None for a removal)."""
        mid = cc.node_id
        if cc.type == CCT.ConfChangeRemoveNode:
            self.members.pop(mid, None)
            self.removed.add(mid)
            return None
        current = self.members.get(mid)
        if ctx.is_promote and current is not None:
            saved = replace(current, is_learner=False)
        elif cc.type == CCT.ConfChangeUpdateNode and current is not None:
            saved = replace(current, peer_urls=ctx.member.peer_urls)
        else:
            saved = replace(ctx.member, is_learner=cc.type == CCT.ConfChangeAddLearnerNode)
        self.members[mid] = saved
        return saved

    def set_attributes(self, member_id: int, name: str, client_urls: tuple[str, ...]) -> None:
        """A member published its name and client URLs (it has started)."""
        current = self.members.get(member_id)
        if current is not None:
            self.members[member_id] = current.with_attributes(name, client_urls)

    # ---- etcd's --strict-reconfig-check quorum rules ------------------------------------
    def ready_to_add_voter(self) -> bool:
        """After adding one voter, enough started voters remain for a quorum."""
        voters = self.voters()
        started = sum(1 for m in voters if m.name)
        total = len(voters) + 1
        if started == 1 and total == 2:
            return True  # a one-member cluster may always grow to two
        return started >= total // 2 + 1

    def ready_to_remove_voter(self, member_id: int) -> bool:
        rest = [m for m in self.voters() if m.id != member_id]
        started = sum(1 for m in rest if m.name)
        return started >= len(rest) // 2 + 1

    def ready_to_promote(self, member_id: int) -> bool:
        voters = self.voters()
        started = sum(1 for m in voters if m.name)
        learner = self.members.get(member_id)
        if learner is not None and learner.name:
            started += 1
        total = len(voters) + 1
        if started == 1 and total == 2:
            return True
        return started >= total // 2 + 1
