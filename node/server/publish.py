"""etcd's publish: a started member replicates its name and client URLs.

As etcd's ReadyNotify, `published` is set once the cluster holds them: the member starts
serving clients only then, so a member that answers is listed as started.

A member added with `member add` is "unstarted" (no name, no client URLs in `member
list`) until it runs and publishes them through Raft, so every member's list shows the
same thing. The initial members' names come from --initial-cluster; their client URLs
arrive the same way. A member publishes again only when what the cluster holds differs
from its flags (a restart with new --advertise-client-urls).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from node.errors import EtcdError
from node.mvcc import requests as rq

if TYPE_CHECKING:
    from node.config import MemberConfig
    from node.server.membership import Membership


class Publisher(Protocol):
    """What publishing needs of the server (EtcdServer)."""

    cfg: MemberConfig
    member_id: int
    membership: Membership
    removed: asyncio.Event
    published: asyncio.Event

    @property
    def lead(self) -> int: ...

    async def propose(self, request: Any) -> Any: ...


log = logging.getLogger(__name__)


async def publish_loop(server: Publisher) -> None:
    """Publish until the cluster holds this member's attributes (or it was removed)."""
    cfg = server.cfg
    want_urls = tuple(cfg.advertise_client_urls)
    retry_seconds = max(0.2, cfg.election_timeout_ms / 1000.0)
    while not server.removed.is_set():
        current = server.membership.get(server.member_id)
        if current is not None and (current.name, current.client_urls) == (cfg.name, want_urls):
            log.info(
                "published local member to cluster through raft",
                extra={"fields": {"local-member-id": f"{server.member_id:x}", "name": cfg.name}},
            )
            server.published.set()
            return
        if current is not None and server.lead:
            request = rq.MemberAttrRequest(
                member_id=server.member_id,
                name=cfg.name.encode(),
                client_urls=",".join(want_urls).encode(),
            )
            try:
                await server.propose(request)
                continue
            except EtcdError as err:
                log.debug("publish failed; retrying", extra={"fields": {"error": str(err)}})
        await asyncio.sleep(retry_seconds)
