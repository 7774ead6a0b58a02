"""One membership change at a time, applied to a `ProgressTracker` (etcd-raft's confchange.Simple
for ConfChange v1: no joint consensus).

Safety rests on two rules kept elsewhere: the leader lets at most one change be unapplied at a
time (`RaftCore.pending_conf_index`), and a change moves at most one voter, so any majority of
the old voter set overlaps any majority of the new one (Raft thesis §4.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.raft.messages import NONE, ConfChangeType

if TYPE_CHECKING:
    from node.raft.messages import ConfChange
    from node.raft.tracker import ProgressTracker

CCT = ConfChangeType


def apply_change(tracker: ProgressTracker, cc: ConfChange, last_index: int) -> str | None:
    """Apply `cc` to `tracker`; the reason it was refused (the tracker unchanged), or None.

    `last_index` is the applier's last log index: a new member's progress starts right after it.
    A change that is already in effect (adding a present voter, removing an absent member) is
    a no-op, not an error: a restarted member may apply a change twice.
    """
    member = cc.node_id
    if member == NONE:
        return None  # a change the server refused: it still ends the pending change
    pr = tracker.progress.get(member)
    if cc.type == CCT.ConfChangeAddNode:
        if pr is None:
            tracker.add(member, last_index, learner=False)
        elif pr.is_learner:
            tracker.promote(member)
        return None
    if cc.type == CCT.ConfChangeAddLearnerNode:
        if pr is None:
            tracker.add(member, last_index, learner=True)
            return None
        if not pr.is_learner:
            # etcd-raft panics here; a voter is never demoted by a single v1 change.
            return f"cannot change {member} from voter to learner"
        return None
    if cc.type == CCT.ConfChangeRemoveNode:
        if pr is None:
            return None
        if not pr.is_learner and tracker.voters == (member,):
            return "removed all voters"
        tracker.remove(member)
        return None
    return None  # ConfChangeUpdateNode: the configuration stays; the server updates URLs
