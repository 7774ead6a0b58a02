"""Snapshots: make one every --snapshot-count entries, send one, receive and install one.

Making a snapshot images the backend in a worker thread while the loop waits, so the
image is exactly at the applied index; then the WAL and MemoryStorage are released up
to it, keeping --snapshot-catchup-entries for slow followers (etcd's snapshot()).
A snapshot from the leader is saved durably before the Ready loop persists anything
that depends on it, and installed (the backend replaced) in the apply step.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from node.raft.messages import Message, MessageType, Snapshot, SnapshotMetadata

if TYPE_CHECKING:
    from node.config import MemberConfig
    from node.mvcc.lease import Lessor
    from node.mvcc.store import KVStore
    from node.raft import MemoryStorage, RawNode
    from node.server.apply import Applier
    from node.server.counters import ServerCounters
    from node.transport import Transport
    from node.wal import WAL, Snapshotter

log = logging.getLogger(__name__)


class Snapshots:
    """The member's snapshot jobs; all run on the Ready loop (their I/O in worker threads)."""

    def __init__(
        self,
        cfg: MemberConfig,
        *,
        snapshotter: Snapshotter,
        kv: KVStore,
        wal: WAL,
        storage: MemoryStorage,
        node: RawNode,
        transport: Transport,
        lessor: Lessor,
        applier: Applier,
        counters: ServerCounters,
        snapshot_index: int,
        received: dict[int, str],
    ) -> None:
        """`received`: db images the transport stored, by index (filled by the Inbox)."""
        self._cfg = cfg
        self._snapshotter = snapshotter
        self._kv = kv
        self._wal = wal
        self._storage = storage
        self._node = node
        self._transport = transport
        self._lessor = lessor
        self._applier = applier
        self._counters = counters
        self.snapshot_index = snapshot_index  # of the newest snapshot made or installed
        self.installing = False  # etcd_server_snapshot_apply_in_progress_total
        self._received = received

    # ---- make ----------------------------------------------------------------------------
    async def maybe_snapshot(self) -> None:
        """Snapshot once --snapshot-count entries were applied since the last one."""
        applied = self._applier.applied_index
        if applied - self.snapshot_index < self._cfg.snapshot_count:
            return
        index = applied
        term = self._storage.term(index)
        conf = self._node.status().conf_state
        meta = SnapshotMetadata(index=index, term=term, conf_state=conf)
        image = os.path.join(self._snapshotter.dir, f".{index:016x}.db.tmp")
        # The image and the checkpoint see committed batches only; nothing is applied
        # while the loop awaits the worker, so the image is exactly at `index`.
        self._kv.commit()
        await asyncio.to_thread(self._write, meta, image)
        self._storage.create_snapshot(index, conf, b"")
        compact_to = index - self._cfg.snapshot_catchup_entries
        if compact_to > self._storage.first_index():
            self._storage.compact(compact_to)
        self.snapshot_index = index
        self._counters.snapshots_taken += 1
        log.info("saved snapshot", extra={"fields": {"snapshot-index": index, "term": term}})

    def _write(self, meta: SnapshotMetadata, image: str) -> None:
        """Worker thread: db image, snapshot file, WAL marker, durable db, release WAL."""
        self._kv.backup(image)
        self._snapshotter.save(meta, image)
        self._wal.save_snapshot(meta)
        self._kv.checkpoint_durable()
        self._wal.release_to(meta.index)
        self._snapshotter.purge(keep=2)

    # ---- send ----------------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Send our newest snapshot for the core's MsgSnap `msg` (the core's carries no data)."""
        newest = self._snapshotter.load_newest()
        if newest is None:
            self._node.report_snapshot(msg.to, True)
            return
        meta, db_path = newest
        self._transport.send_snapshot(
            Message(
                type=MessageType.MsgSnap,
                to=msg.to,
                frm=msg.frm,
                term=msg.term,
                snapshot=Snapshot(metadata=meta),
            ),
            db_path,
        )

    # ---- receive -------------------------------------------------------------------------
    async def persist(self, snap: Snapshot) -> None:
        """A snapshot from the leader: store it durably before anything depends on it."""
        path = self._received.get(snap.metadata.index)
        if path is None:
            raise RuntimeError(
                f"snapshot at index {snap.metadata.index} arrived without its db image"
            )

        def persist() -> None:
            self._snapshotter.save(snap.metadata, path)
            self._wal.save_snapshot(snap.metadata)

        await asyncio.to_thread(persist)
        self._storage.apply_snapshot(snap)

    async def install(self, snap: Snapshot) -> None:
        """Replace the backend with the persisted snapshot's image (the apply step)."""
        newest = self._snapshotter.load_newest()
        if newest is None or newest[0].index != snap.metadata.index:
            raise RuntimeError(f"snapshot {snap.metadata.index} was not saved before install")
        self.installing = True
        try:
            await asyncio.to_thread(self._kv.restore_from, newest[1])
        finally:
            self.installing = False
        self._received.pop(snap.metadata.index, None)
        self._applier.reset(max(snap.metadata.index, self._kv.applied_index()))
        self.snapshot_index = snap.metadata.index
        self._counters.snapshots_installed += 1
        self._lessor.reload()
        log.info(
            "applied snapshot from leader",
            extra={"fields": {"snapshot-index": snap.metadata.index}},
        )
