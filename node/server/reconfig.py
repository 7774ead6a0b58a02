"""Membership changes: proposing them with etcd's checks, applying them in log order.

Proposing (MemberAdd / MemberRemove / MemberUpdate / MemberPromote) runs etcd's
--strict-reconfig-check rules on the proposing member, then puts one conf-change entry
through Raft and waits until this member applied it. Applying runs on the Ready loop for
every member alike: `Membership.validate` on the applied state (a refused change still
clears the core's pending-change guard with an empty change), then the member table in
the backend, the Raft core's configuration and the transport's peers, in that order.

A member that applies its own removal stops, with etcd's words.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from node import errors as E
from node.config import new_member_id
from node.mvcc.members import MemberRecord
from node.raft import NONE, ConfChange, ConfChangeType, ProposalDropped
from node.server.membership import ChangeContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.raft.messages import Entry
    from node.server.context import ServerContext
    from node.server.leader_wait import LeaderWait
    from node.server.membership import Membership

log = logging.getLogger(__name__)

CCT = ConfChangeType
LEARNER_READY_PERCENT = 0.9  # etcd: a learner within 90% of the leader's match may be promoted
HEALTH_INTERVAL_SECONDS = 5.0  # etcd's HealthInterval: "connected" means for this long
REMOVED_MESSAGE = "the member has been permanently removed from the cluster"


def check_peer_urls(urls: list[str]) -> tuple[str, ...]:
    """etcd's types.NewURLs: scheme://host:port without a path, or ErrMemberBadURLs."""
    if not urls:
        raise E.ErrMemberBadURLs()
    for url in urls:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port
        except ValueError:
            ok = False
        if not ok or parts.path not in ("", "/"):
            raise E.ErrMemberBadURLs()
    return tuple(sorted(urls))


class Reconfig:
    """Conf changes of one member: its proposals waiting, and the apply of every change."""

    def __init__(
        self,
        ctx: ServerContext,
        membership: Membership,
        on_removed: Callable[[], None],
        leader_wait: LeaderWait,
    ) -> None:
        self._ctx = ctx
        self._leader_wait = leader_wait
        self.membership = membership
        self._on_removed = on_removed
        self._member_id = ctx.cfg.member_id
        self._waiters: dict[int, asyncio.Future[E.EtcdError | None]] = {}
        self._next_id = time.time_ns() & 0xFFFF_FFFF_FFFF
        self._one_at_a_time = asyncio.Lock()
        self.removed = False  # this member applied its own removal

    # ---- proposing -----------------------------------------------------------------------
    async def add(self, peer_urls: list[str], is_learner: bool) -> MemberRecord:
        urls = check_peer_urls(peer_urls)
        if self.membership.peer_urls_in_use() & set(urls):
            raise E.ErrPeerURLExist()  # the apply would refuse it: say so without a round
        cfg = self._ctx.cfg
        if cfg.strict_reconfig_check:
            if not is_learner and not self.membership.ready_to_add_voter():
                raise E.ErrMemberNotEnoughStarted()
            if not self._all_voters_connected():  # etcd checks this for learners too
                raise E.ErrUnhealthy()
        member = MemberRecord(
            new_member_id(urls, cfg.initial_cluster_token, int(time.time())),
            peer_urls=urls,
            is_learner=is_learner,
        )
        kind = CCT.ConfChangeAddLearnerNode if is_learner else CCT.ConfChangeAddNode
        await self._change(kind, member.id, ChangeContext(member))
        return self.membership.get(member.id) or member

    async def remove(self, member_id: int) -> None:
        if self._ctx.cfg.strict_reconfig_check and not self.membership.is_learner(member_id):
            if not self.membership.ready_to_remove_voter(member_id):
                raise E.ErrMemberNotEnoughStarted()
            if member_id != self._member_id and self._connected(member_id):
                # Removing a member that is up: the rest must still make a quorum.
                voters = self.membership.voters()
                active = sum(1 for m in voters if self._connected(m.id))
                if active - 1 < 1 + (len(voters) - 1) // 2:
                    raise E.ErrUnhealthy()
        await self._change(
            CCT.ConfChangeRemoveNode, member_id, ChangeContext(MemberRecord(member_id))
        )

    async def update(self, member_id: int, peer_urls: list[str]) -> None:
        urls = check_peer_urls(peer_urls)
        current = self.membership.get(member_id)
        base = current if current is not None else MemberRecord(member_id)
        record = MemberRecord(member_id, base.name, urls, base.client_urls, base.is_learner)
        await self._change(CCT.ConfChangeUpdateNode, member_id, ChangeContext(record))

    async def promote(self, member_id: int, leader_progress: dict[int, int]) -> MemberRecord:
        """On the leader: promote a learner that caught up (`leader_progress`: match indexes)."""
        member = self.membership.get(member_id)
        if member is None:
            raise E.ErrMemberNotFound()
        if not member.is_learner:
            raise E.ErrMemberNotLearner()
        if self._ctx.cfg.strict_reconfig_check and not self.membership.ready_to_promote(member_id):
            raise E.ErrMemberNotEnoughStarted()
        leader_match = leader_progress.get(self._member_id, 0)
        if leader_progress.get(member_id, 0) < leader_match * LEARNER_READY_PERCENT:
            raise E.ErrLearnerNotReady()
        await self._change(CCT.ConfChangeAddNode, member_id, ChangeContext(member, is_promote=True))
        return self.membership.get(member_id) or member

    def _connected(self, member_id: int) -> bool:
        """Connected for etcd's HealthInterval at least (isConnectedSince)."""
        stats = self._ctx.transport.stats().get(member_id)
        if stats is None or not stats.active:
            return False
        return time.monotonic() - stats.active_since >= HEALTH_INTERVAL_SECONDS

    def _all_voters_connected(self) -> bool:
        return all(
            self._connected(m.id) for m in self.membership.voters() if m.id != self._member_id
        )

    async def _change(self, kind: ConfChangeType, member_id: int, ctx: ChangeContext) -> None:
        """Propose one change and wait until it is applied here (or refused on apply)."""
        async with self._one_at_a_time:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._ctx.cfg.request_timeout_seconds
            self._next_id += 1
            cc = ConfChange(kind, member_id, self._next_id, ctx.encode())
            done: asyncio.Future[E.EtcdError | None] = loop.create_future()
            self._waiters[cc.id] = done
            try:
                refused = await self._propose_until_applied(cc, done, deadline)
            finally:
                self._waiters.pop(cc.id, None)
        if refused is not None:
            raise refused

    async def _propose_until_applied(
        self, cc: ConfChange, done: asyncio.Future[E.EtcdError | None], deadline: float
    ) -> E.EtcdError | None:
        """Hand `cc` to the core once a leader is known; its apply's answer.

        etcd's ProposeConfChange blocks while its raft node knows no leader, so a member
        change sent during an election waits for the new leader instead of failing. A
        change the core drops all the same (the leader went away between the look and
        the proposal, or leadership is being handed over) is proposed again once a
        leader is known. The request timeout ends every wait: "request timed out".
        """
        loop = asyncio.get_running_loop()
        node = self._ctx.opened.node
        while True:
            try:
                await self._leader_wait.leader(deadline)
            except E.ErrNoLeader:
                raise E.ErrTimeout() from None
            if not self._leader_term_applied():
                # A new leader ignores conf changes until it applied its first entry
                # (the core's one-change-at-a-time guard): wait for that entry here.
                await asyncio.sleep(
                    min(self._ctx.cfg.tick_seconds, max(0.0, deadline - loop.time()))
                )
                if loop.time() >= deadline:
                    raise E.ErrTimeout()
                continue
            accepted: asyncio.Future[bool] = loop.create_future()

            def propose(accepted: asyncio.Future[bool] = accepted) -> None:
                try:
                    node.propose_conf_change(cc)
                except ProposalDropped:
                    accepted.set_result(False)
                else:
                    accepted.set_result(True)

            self._ctx.inbox.report(propose)
            either: set[asyncio.Future[Any]] = {accepted, done}
            await asyncio.wait(either, timeout=max(0.0, deadline - loop.time()))
            if done.done():
                return done.result()
            if not accepted.done():
                raise E.ErrTimeout()
            if accepted.result():
                try:
                    return await asyncio.wait_for(done, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise E.ErrTimeout() from None
            # Dropped: wait a tick before looking for a leader again (a handover is short).
            await asyncio.sleep(min(self._ctx.cfg.tick_seconds, max(0.0, deadline - loop.time())))

    def _leader_term_applied(self) -> bool:
        """This member applied an entry of the current term: the leader's first entry,
        which the leader committed (and so as good as applied) before this member heard
        of it. Until then a new leader turns a conf change into an empty entry, and its
        proposer would wait out the request timeout for nothing."""
        node = self._ctx.opened.node
        st = node.status()
        return node.raft.raft_log.zero_term_on_err(st.applied) == st.term

    # ---- applying (on the Ready loop) -------------------------------------------------------
    def apply(self, entry: Entry) -> None:
        """Apply one committed EntryConfChange entry."""
        node, kv = self._ctx.opened.node, self._ctx.opened.kv
        try:
            cc = ConfChange.decode(entry.data)
            change = ChangeContext.decode(cc.node_id, cc.context)
        except (ValueError, KeyError, TypeError):
            log.error("undecodable conf change", extra={"fields": {"index": entry.index}})
            node.apply_conf_change(ConfChange(CCT.ConfChangeAddNode, NONE))
            kv.apply_member_change(entry.index)
            return
        refused = self.membership.validate(cc, change)
        if refused is not None:
            node.apply_conf_change(ConfChange(cc.type, NONE))
            kv.apply_member_change(entry.index)
            self._answer(cc.id, refused)
            return
        saved = self.membership.apply(cc, change)
        if saved is None:
            kv.apply_member_change(entry.index, remove=cc.node_id)
        else:
            kv.apply_member_change(entry.index, save=saved)
        node.apply_conf_change(cc)
        self._update_transport(cc, saved)
        log.info(
            "applied a configuration change",
            extra={
                "fields": {
                    "type": cc.type.name,
                    "member-id": f"{cc.node_id:x}",
                    "promote": change.is_promote,
                    "index": entry.index,
                }
            },
        )
        self._answer(cc.id, None)
        if cc.type == CCT.ConfChangeRemoveNode and cc.node_id == self._member_id:
            self.removed = True
            log.warning(REMOVED_MESSAGE, extra={"fields": {"local-member-id": f"{cc.node_id:x}"}})
            self._on_removed()

    def _update_transport(self, cc: ConfChange, saved: MemberRecord | None) -> None:
        transport = self._ctx.transport
        mid = cc.node_id
        if mid == self._member_id:
            return
        if cc.type == CCT.ConfChangeRemoveNode:
            transport.remove_peer(mid)
        elif saved is not None and saved.peer_urls:
            transport.add_peer(mid, saved.peer_urls[0])  # added, promoted or moved

    def _answer(self, cc_id: int, refused: E.EtcdError | None) -> None:
        waiter = self._waiters.get(cc_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(refused)

    def fail_all(self) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(E.ErrStopped())
