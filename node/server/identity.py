"""Who this member is, settled before anything is opened (etcd's bootstrap checks).

A member's id is normally the hash of its peer URLs and the cluster token. Two kinds of
member are different: one added at run time got its id from `member add` (the time is
in the hash), and one restarted from its data dir must be whoever its WAL says. So:

- a WAL exists: the WAL's metadata names the member and the cluster (flags such as
  --initial-cluster are ignored, as etcd ignores them on restart);
- no WAL and --initial-cluster-state existing: ask the running cluster's members over
  their peer URLs, find ourselves among them by our peer URLs, and take that id, the
  cluster id and the member list;
- otherwise (a new cluster): the hashed ids stand.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from node.config import ConfigError, MemberSpec
from node.tls import any_https, client_context
from node.transport.peerclient import PeerRequestFailed, fetch_members
from node.wal import WAL

if TYPE_CHECKING:
    from node.config import MemberConfig

log = logging.getLogger(__name__)

JOIN_TIMEOUT_SECONDS = 5.0


def parse_wal_metadata(metadata: bytes) -> tuple[int, int]:
    """The WAL's "member-id/cluster-id" (hex) metadata."""
    member, _, cluster = metadata.decode().partition("/")
    return int(member, 16), int(cluster, 16)


async def resolve_identity(cfg: MemberConfig) -> MemberConfig:
    """`cfg` with the member id, cluster id and members this member must start with."""
    wal_dir = os.path.join(cfg.member_dir, "wal")
    if WAL.exists(wal_dir):
        member_id, cluster_id = parse_wal_metadata(WAL.read_metadata(wal_dir))
        if (member_id, cluster_id) == (cfg.member_id, cfg.cluster_id):
            return cfg
        return replace(cfg, known_member_id=member_id, known_cluster_id=cluster_id)
    if cfg.initial_cluster_state != "existing":
        return cfg
    return await _join(cfg)


async def _join(cfg: MemberConfig) -> MemberConfig:
    own = set(cfg.initial_advertise_peer_urls)
    others = [url for name, urls in cfg.initial_cluster.items() if name != cfg.name for url in urls]
    if not others:
        raise ConfigError(
            "--initial-cluster-state existing needs the running members in --initial-cluster"
        )
    ssl = client_context(cfg.peer_tls) if any_https(others) else None
    try:
        cluster_id, members = await fetch_members(
            others, peer_ssl=ssl, seconds=JOIN_TIMEOUT_SECONDS
        )
    except PeerRequestFailed as err:
        raise ConfigError(f"cannot fetch cluster info from peer urls: {err}") from err
    specs: list[MemberSpec] = []
    me = 0
    for m in members:
        member_id = int(str(m["id"]), 16)
        urls = tuple(str(u) for u in m.get("peerURLs", ()))
        if set(urls) == own:
            me = member_id
        specs.append(MemberSpec(str(m.get("name") or ""), member_id, urls))
    if not me:
        raise ConfigError(
            f"--initial-advertise-peer-urls {','.join(sorted(own))} match no member of the "
            f"running cluster: add the member first (etcdctl member add {cfg.name} "
            f"--peer-urls={','.join(sorted(own))})"
        )
    log.info(
        "joining an existing cluster",
        extra={"fields": {"local-member-id": f"{me:x}", "cluster-id": f"{cluster_id:x}"}},
    )
    specs = [replace(s, name=cfg.name) if s.member_id == me else s for s in specs]
    return replace(
        cfg,
        known_member_id=me,
        known_cluster_id=cluster_id,
        existing_members=tuple(sorted(specs, key=lambda s: s.member_id)),
    )
