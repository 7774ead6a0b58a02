"""Open what a member starts from: snapshot, backend, WAL, and the Raft node on top of them.

etcd's bootstrap.go in one function: create the WAL on first boot, or load the newest
snapshot and replay the WAL into `MemoryStorage`, reconcile the backend's applied index
with the replayed commit index, and build the `RawNode` at that applied index.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from node.mvcc.members import MemberRecord
from node.mvcc.store import KVStore
from node.raft import ConfChange, ConfChangeType, Config, ConfState, MemoryStorage, RawNode
from node.raft.messages import Entry, EntryType, HardState, Snapshot
from node.server.membership import ChangeContext, Membership
from node.server.snapshot_recovery import recover_backend
from node.wal import WAL, Snapshotter, WALError

if TYPE_CHECKING:
    from node.config import MemberConfig
    from node.server.observer import MemberObserver

log = logging.getLogger(__name__)
RAFT_LOGGER = "node.raft"


@dataclass(slots=True)
class Bootstrapped:
    """Everything opened at start-up, ready for the Ready loop."""

    snapshotter: Snapshotter
    kv: KVStore
    storage: MemoryStorage
    wal: WAL
    node: RawNode
    applied_index: int  # the backend's; entries after it are re-applied from the log
    snapshot_index: int  # of the newest snapshot loaded (0: none)
    membership: Membership  # as applied (empty until a new cluster applies its first entries)
    peers: dict[int, str]  # the other members' first peer URLs, for the transport


def bootstrap(cfg: MemberConfig, observer: MemberObserver) -> Bootstrapped:
    """Open the member's data directory (creating it on first boot)."""
    snap_dir = os.path.join(cfg.member_dir, "snap")
    os.makedirs(snap_dir, exist_ok=True)
    snapshotter = Snapshotter(snap_dir, observer=observer)
    started = time.monotonic()
    kv = KVStore.open(
        os.path.join(snap_dir, "db"),
        quota_bytes=cfg.quota_backend_bytes,
        max_txn_ops=cfg.max_txn_ops,
        min_lease_ttl=max(2, -(-3 * cfg.election_timeout_ms // 2000)),
        observer=observer,
        batch_interval=cfg.backend_batch_interval_seconds,
        batch_limit=cfg.backend_batch_limit,
    )
    recover_backend(snapshotter, kv)  # a received snapshot saved but not installed
    _took("backend opened", started)
    started = time.monotonic()
    storage = MemoryStorage()
    applied_index = kv.applied_index()
    fresh = not WAL.exists(os.path.join(cfg.member_dir, "wal"))
    wal, snapshot_index = _open_wal(cfg, observer, snapshotter, storage, applied_index)
    wal.fsync_delay_seconds = cfg.wal_fsync_delay_seconds
    _took("wal replayed", started)
    started = time.monotonic()
    joining = cfg.initial_cluster_state == "existing"
    if fresh and not joining:
        _append_initial_members(cfg, wal, storage)
    elif not fresh and applied_index > 0 and not kv.members():
        # A data dir written before membership was replicated: the flags are its truth.
        kv.seed_members([_record(cfg, spec.member_id) for spec in cfg.members])
    membership = Membership(kv.members(), kv.removed_member_ids())
    conf_state: ConfState | None = None
    if membership.members:
        conf_state = membership.conf_state()  # the configuration at the applied index
    elif joining:
        conf_state = ConfState()  # learned from the leader's log or snapshot
    node = RawNode(
        Config(
            id=cfg.member_id,
            peers=tuple(m.member_id for m in cfg.members),
            election_tick=cfg.election_ticks,
            heartbeat_tick=1,
            rng=random.Random(cfg.member_id ^ time.time_ns()),
            check_quorum=True,
            pre_vote=True,
            # The core's own lines (pre-votes, votes, "became leader at term 5"), as etcd
            # logs its raft package's: how an operator reads an election after the fact.
            logger=logging.getLogger(RAFT_LOGGER),
            applied=applied_index,
            conf_state=conf_state,
        ),
        storage,
    )
    _took("bootstrapped", started)
    known = membership.sorted() or [_record(cfg, s.member_id) for s in cfg.members]
    peers = {m.id: m.peer_urls[0] for m in known if m.id != cfg.member_id and m.peer_urls}
    return Bootstrapped(
        snapshotter, kv, storage, wal, node, applied_index, snapshot_index, membership, peers
    )


def _took(what: str, started: float) -> None:
    """One start-up step's line, with its duration (the restart bench's break-down)."""
    log.info(what, extra={"fields": {"took": f"{time.monotonic() - started:.3f}s"}})


def _record(cfg: MemberConfig, member_id: int) -> MemberRecord:
    spec = next(s for s in cfg.members if s.member_id == member_id)
    return MemberRecord(member_id, spec.name, spec.peer_urls)


def _append_initial_members(cfg: MemberConfig, wal: WAL, storage: MemoryStorage) -> None:
    """A new cluster's first entries add its members, committed at term 1 (etcd's
    StartNode): a member added later replays them and learns the whole membership from
    the log, and every member's table is filled by applying them."""
    entries = [
        Entry(
            term=1,
            index=i,
            type=EntryType.EntryConfChange,
            data=ConfChange(
                ConfChangeType.ConfChangeAddNode,
                spec.member_id,
                context=ChangeContext(
                    MemberRecord(spec.member_id, spec.name, spec.peer_urls)
                ).encode(),
            ).encode(),
        )
        for i, spec in enumerate(cfg.members, 1)
    ]
    hard_state = HardState(term=1, vote=0, commit=len(entries))
    wal.save(hard_state, entries, must_sync=True)
    storage.append(entries)
    storage.set_hard_state(hard_state)


def _open_wal(
    cfg: MemberConfig,
    observer: MemberObserver,
    snapshotter: Snapshotter,
    storage: MemoryStorage,
    applied_index: int,
) -> tuple[WAL, int]:
    """Create the WAL on first boot; otherwise replay it into `storage`.

    Returns the WAL and the index of the snapshot it was replayed from (0: none).
    """
    wal_dir = os.path.join(cfg.member_dir, "wal")
    member_id = cfg.member_id
    newest = snapshotter.load_newest()
    if not WAL.exists(wal_dir):
        meta = f"{member_id:x}/{cfg.cluster_id:x}".encode()
        log.info(
            "bootstrapping new member",
            extra={"fields": {"local-member-id": f"{member_id:x}"}},
        )
        return WAL.create(wal_dir, meta, segment_size=cfg.wal_segment_bytes, observer=observer), 0
    snap_meta = newest[0] if newest else None
    wal, replay = WAL.open(
        wal_dir,
        snapshot=snap_meta,
        segment_size=cfg.wal_segment_bytes,
        observer=observer,
    )
    snapshot_index = 0
    if snap_meta is not None and snap_meta.index > 0:
        storage.apply_snapshot(Snapshot(metadata=snap_meta))
        snapshot_index = snap_meta.index
    hard_state = replay.hard_state or HardState()
    last_index = replay.entries[-1].index if replay.entries else snapshot_index
    if applied_index > hard_state.commit:
        # Commit-only hard states are saved without an fsync (etcd's MustSync rule) and
        # SQLite commits with synchronous=NORMAL, so a power loss can keep the database's
        # applied index but not the commit that allowed it. Applied entries were
        # committed, and entries are fsynced before anyone learns of them, so the
        # commit index is raised to the applied one; an applied index past the log
        # means the WAL lost acknowledged entries: refuse to start.
        if applied_index > last_index:
            raise WALError(
                f"database applied index {applied_index} is past the last WAL "
                f"entry {last_index} in {wal_dir}: the WAL lost entries it had made durable"
            )
        log.warning(
            "raising commit index %d to the database's applied index %d",
            hard_state.commit,
            applied_index,
        )
        hard_state = replace(hard_state, commit=applied_index)
    if not hard_state.is_empty():
        storage.set_hard_state(hard_state)
    if replay.entries:
        storage.append(replay.entries)
    log.info(
        "restarting member",
        extra={
            "fields": {
                "local-member-id": f"{member_id:x}",
                "snapshot-index": snapshot_index,
                "applied-index": applied_index,
                "wal-entries": len(replay.entries),
                "commit-index": hard_state.commit,
            }
        },
    )
    return wal, snapshot_index
