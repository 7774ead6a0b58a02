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
    from collections.abc import Callable

    from node.server.apply import Applier
    from node.server.context import ServerContext

log = logging.getLogger(__name__)


class Snapshots:
    """The member's snapshot jobs; all run on the Ready loop (their I/O in worker threads)."""

    def __init__(self, ctx: ServerContext, applier: Applier) -> None:
        self._ctx = ctx
        self._opened = ctx.opened
        self._applier = applier
        self.snapshot_index = ctx.opened.snapshot_index  # newest snapshot made or installed
        self.installing = False  # etcd_server_snapshot_apply_in_progress_total
        self.on_installed: Callable[[], None] = lambda: None  # the server re-reads membership

    # ---- make ----------------------------------------------------------------------------
    async def maybe_snapshot(self) -> None:
        """Snapshot once --snapshot-count entries were applied since the last one."""
        applied = self._applier.applied_index
        if applied - self.snapshot_index < self._ctx.cfg.snapshot_count:
            return
        index, storage = applied, self._opened.storage
        term = storage.term(index)
        conf = self._opened.node.status().conf_state
        meta = SnapshotMetadata(index=index, term=term, conf_state=conf)
        image = os.path.join(self._opened.snapshotter.dir, f".{index:016x}.db.tmp")
        # The image and the checkpoint see committed batches only; nothing is applied
        # while the loop awaits the worker, so the image is exactly at `index`.
        self._opened.kv.commit()
        await asyncio.to_thread(self._write, meta, image)
        storage.create_snapshot(index, conf, b"")
        compact_to = index - self._ctx.cfg.snapshot_catchup_entries
        if compact_to > storage.first_index():
            storage.compact(compact_to)
        self.snapshot_index = index
        self._ctx.counters.snapshots_taken += 1
        log.info("saved snapshot", extra={"fields": {"snapshot-index": index, "term": term}})

    def _write(self, meta: SnapshotMetadata, image: str) -> None:
        """Worker thread: db image, snapshot file, WAL marker, durable db, release WAL."""
        kv, wal, snapshotter = self._opened.kv, self._opened.wal, self._opened.snapshotter
        kv.backup(image)
        snapshotter.save(meta, image)
        wal.save_snapshot(meta)
        kv.checkpoint_durable()
        wal.release_to(meta.index)
        snapshotter.purge(keep=2)

    # ---- send ----------------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Send our newest snapshot for the core's MsgSnap `msg` (the core's carries no data)."""
        newest = self._opened.snapshotter.load_newest()
        if newest is None:
            self._opened.node.report_snapshot(msg.to, True)
            return
        meta, db_path = newest
        self._ctx.transport.send_snapshot(
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
        path = self._ctx.inbox.snapshots.get(snap.metadata.index)
        if path is None:
            raise RuntimeError(
                f"snapshot at index {snap.metadata.index} arrived without its db image"
            )

        def persist() -> None:
            self._opened.snapshotter.save(snap.metadata, path)
            self._opened.wal.save_snapshot(snap.metadata)

        await asyncio.to_thread(persist)
        self._opened.storage.apply_snapshot(snap)

    async def install(self, snap: Snapshot) -> None:
        """Replace the backend with the persisted snapshot's image (the apply step)."""
        kv = self._opened.kv
        newest = self._opened.snapshotter.load_newest()
        if newest is None or newest[0].index != snap.metadata.index:
            raise RuntimeError(f"snapshot {snap.metadata.index} was not saved before install")
        self.installing = True
        try:
            await asyncio.to_thread(kv.restore_from, newest[1])
        finally:
            self.installing = False
        self._ctx.inbox.snapshots.pop(snap.metadata.index, None)
        self._applier.reset(max(snap.metadata.index, kv.applied_index()))
        self.snapshot_index = snap.metadata.index
        self._ctx.counters.snapshots_installed += 1
        self._ctx.lessor.reload()
        self.on_installed()
        log.info(
            "applied snapshot from leader",
            extra={"fields": {"snapshot-index": snap.metadata.index}},
        )
