"""Snapshots: make one every --snapshot-count entries, send one, receive and install one.

As etcd's, a snapshot is a marker, never a copy of the database: making one commits
the open batch, makes the database durable (a full checkpoint) and then records index,
term and ConfState in a small .snap file and the WAL, which is released up to it
(keeping --snapshot-catchup-entries for slow followers). The live database IS the
snapshot's state, at or past its index.

A database image exists only when a follower needs one: the leader builds it from a
consistent read snapshot of the database in a worker thread, streams it, and deletes
it once every upload that uses it has ended (uploads that start while it exists share
it). The follower's transport writes the upload to one file in the snap directory
(durably, <index>.snap.db, etcd's name); the Ready loop records the marker before
anything depends on it, and the apply step moves that file into place as the live
database (no copy). A member that crashes in between finds the file at start-up and
installs it then (snapshot_recovery.py, etcd's recoverSnapshotBackend). So besides the
live database there is at most one image on disk per member, and only while one
travels.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
from typing import TYPE_CHECKING

from node.mvcc.members import image_conf_state
from node.raft import RaftError
from node.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMetadata

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.raft.storage import MemoryStorage
    from node.server.apply import Applier
    from node.server.context import ServerContext

log = logging.getLogger(__name__)

COMPACT_STEP = 10_000  # Raft log entries dropped per loop turn after a snapshot
OUTGOING_PREFIX = ".outgoing-"  # the leader's image for followers: .outgoing-<applied:016x>.db
_RECEIVED_RE = re.compile(r"^([0-9a-f]{16})\.snap\.db$")  # node/transport/snapshot.py's name


def _remove_images(snap_dir: str, *, outgoing: bool, received_upto: int) -> int:
    """Delete leftover images: outgoing ones (a stopped leader's) and received ones."""
    removed = 0
    for name in os.listdir(snap_dir):
        match = _RECEIVED_RE.match(name)
        doomed = (outgoing and name.startswith(OUTGOING_PREFIX)) or (
            match is not None and int(match.group(1), 16) <= received_upto
        )
        if doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(snap_dir, name))
                removed += 1
    return removed


async def compact_log(storage: MemoryStorage, compact_to: int, step: int = COMPACT_STEP) -> None:
    """Drop the Raft log's entries before `compact_to`, `step` at a time, a loop turn apart.

    The log keeps every entry since the last snapshot (--snapshot-count, 100,000 by
    default); dropped at once, freeing them held the loop ~20 ms on the shared box.
    Between steps the Ready loop may append (and a compaction target already passed,
    by a snapshot installed meanwhile, ends it).
    """
    while compact_to > storage.first_index():
        storage.compact(min(compact_to, storage.first_index() + step))
        if compact_to > storage.first_index():
            await asyncio.sleep(0)


Image = tuple[str, int, "ConfState | None"]
"""A db image for followers: its path, applied index and member table's configuration."""


class Snapshots:
    """The member's snapshot jobs; all run on the Ready loop (their I/O in worker threads)."""

    def __init__(self, ctx: ServerContext, applier: Applier) -> None:
        self._ctx = ctx
        self._opened = ctx.opened
        self._applier = applier
        self.snapshot_index = ctx.opened.snapshot_index  # newest snapshot made or installed
        self.installing = False  # etcd_server_snapshot_apply_in_progress_total
        self.on_installed: Callable[[], None] = lambda: None  # the server re-reads membership
        # The leader's db image for followers: built once, shared by the uploads that
        # start while it exists (refs), deleted after the last. An image superseded by a
        # newer snapshot while still streaming is retired: deleted when its uploads end.
        self._outgoing: asyncio.Future[Image] | None = None
        self._refs: dict[asyncio.Future[Image], int] = {}
        self._retired: dict[asyncio.Future[Image], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        _remove_images(ctx.opened.snapshotter.dir, outgoing=True, received_upto=-1)

    # ---- make ----------------------------------------------------------------------------
    async def maybe_snapshot(self) -> None:
        """Snapshot once --snapshot-count entries were applied since the last one.

        Runs as a task beside the Ready loop (raft_loop.py), in three steps, so the loop
        keeps persisting, sending and advancing throughout: no heartbeat waits for it.

        1. While the loop applies: most of the checkpoint (SQLite's WAL copied into the
           database file, the file fsynced; `KVStore.checkpoint_ahead`).
        2. Applies held (the Applier defers committed entries, as during a defragment):
           commit the open batch, take the applied index as the snapshot's, and run the
           FULL checkpoint that makes the database durable at it. It blocks SQLite's
           writers, so nothing may commit meanwhile; step 1 left it little to do.
        3. Applies resume; the markers (the .snap file, the WAL's record, then the WAL
           released up to the index) are written in a worker thread. The database is
           durable at or past the index, and the WAL keeps every entry after it.
        """
        applied = self._applier.applied_index
        if applied - self.snapshot_index < self._ctx.cfg.snapshot_count:
            return
        kv, storage = self._opened.kv, self._opened.storage
        if kv.defragmenting:
            return  # the next Ready after the defragment snapshots
        started = time.perf_counter()
        await asyncio.to_thread(kv.checkpoint_ahead)
        ahead = time.perf_counter()
        if kv.defragmenting:
            return
        applier = self._applier
        applier.held = True
        try:
            # The checkpoint sees committed batches only, and nothing is applied while it
            # runs: the database is durable at exactly `index`.
            kv.commit()
            index = applier.applied_index
            term = storage.term(index)
            conf = self._opened.node.status().conf_state
            meta = SnapshotMetadata(index=index, term=term, conf_state=conf)
            await asyncio.to_thread(kv.checkpoint_durable)
        finally:
            applier.held = False
        held = time.perf_counter()
        await applier.resume()  # what waited, in order (a Ready's apply may come first)
        await asyncio.to_thread(self._write, meta)
        storage.create_snapshot(index, conf, b"")
        await compact_log(storage, index - self._ctx.cfg.snapshot_catchup_entries)
        self.snapshot_index = index
        self._ctx.counters.snapshots_taken += 1
        done = time.perf_counter()
        log.info(
            "saved snapshot",
            extra={
                "fields": {
                    "snapshot-index": index,
                    "term": term,
                    "checkpoint-ahead": f"{(ahead - started) * 1000:.0f}ms",
                    "applies-held": f"{(held - ahead) * 1000:.0f}ms",
                    "markers": f"{(done - held) * 1000:.0f}ms",
                }
            },
        )

    def _write(self, meta: SnapshotMetadata) -> None:
        """Worker thread, after the database is durable at `meta.index`: the markers
        (snapshot file, WAL record), then release the WAL up to it."""
        wal, snapshotter = self._opened.wal, self._opened.snapshotter
        snapshotter.save(meta)
        wal.save_snapshot(meta)
        wal.release_to(meta.index)
        snapshotter.purge(keep=2)

    # ---- send ----------------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Send a snapshot for the core's MsgSnap `msg`: its marker plus a db image.

        The image is built off the loop (or shared with an upload in flight, if it is at
        or past the marker's index); the loop only commits the open batch first, so the
        image holds everything applied so far.
        """
        if msg.snapshot is not None and not msg.snapshot.is_empty():
            meta = msg.snapshot.metadata
        else:
            newest = self._opened.snapshotter.load_newest()
            if newest is None:
                self._opened.node.report_snapshot(msg.to, True)
                return
            meta = newest[0]
        out = Message(
            type=MessageType.MsgSnap,
            to=msg.to,
            frm=msg.frm,
            term=msg.term,
            snapshot=Snapshot(metadata=meta),
        )
        self._opened.kv.commit()
        task = asyncio.get_running_loop().create_task(self._send_image(out))
        self._tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("building a snapshot image failed", exc_info=task.exception())

    async def _send_image(self, msg: Message) -> None:
        assert msg.snapshot is not None
        try:
            path, applied, conf = await self._acquire_image(msg.snapshot.metadata.index)
        except Exception:
            self._ctx.inbox.on_snapshot_status(msg.to, True)
            raise
        msg.snapshot = Snapshot(metadata=self._image_metadata(msg.snapshot.metadata, applied, conf))
        self._ctx.transport.send_snapshot(msg, path, on_done=lambda: self._release_image(path))

    def _image_metadata(
        self, marker: SnapshotMetadata, applied: int, conf: ConfState | None
    ) -> SnapshotMetadata:
        """The snapshot the image really is (etcd's createMergedSnapshotMessage): at the
        image's applied index, with the configuration its member table holds. The marker
        may predate a member added since, and a follower refuses a snapshot whose
        configuration does not name it."""
        if conf is None or applied <= marker.index:
            return marker
        try:
            term = self._opened.storage.term(applied)
        except RaftError:
            return marker
        return SnapshotMetadata(index=applied, term=term, conf_state=conf)

    async def _acquire_image(self, index: int) -> Image:
        """An image at or past `index`: the one in use if it qualifies, else a new one."""
        image = self._outgoing
        if image is None or (image.done() and not image.exception() and image.result()[1] < index):
            if image is not None:
                self._retired[image] = self._refs.pop(image, 0)
            applied = self._applier.applied_index
            path = os.path.join(self._opened.snapshotter.dir, f"{OUTGOING_PREFIX}{applied:016x}.db")
            image = asyncio.ensure_future(asyncio.to_thread(self._build_image, path))
            self._outgoing = image
        self._refs[image] = self._refs.get(image, 0) + 1
        try:
            return await asyncio.shield(image)
        except BaseException:
            self._drop_ref(image)
            raise

    def _build_image(self, path: str) -> Image:
        """Worker thread: a consistent copy of the committed database (SQLite backup API),
        its applied index and the configuration its member table holds (None: no table).
        Not fsynced: it only travels (the follower's copy is made durable) and a leader
        that restarts deletes it."""
        info = self._opened.kv.backup(path, durable=False)
        log.info(
            "built snapshot image for a follower",
            extra={"fields": {"applied-index": info.applied_index, "bytes": info.size}},
        )
        return path, info.applied_index, image_conf_state(path)

    def _release_image(self, path: str) -> None:
        for image in [*self._refs, *self._retired]:
            if image.done() and not image.exception() and image.result()[0] == path:
                self._drop_ref(image)
                return

    def _drop_ref(self, image: asyncio.Future[Image]) -> None:
        """One upload less uses `image`; the last one deletes it."""
        refs = self._retired if image in self._retired else self._refs
        refs[image] = refs.get(image, 1) - 1
        if refs[image] > 0:
            return
        del refs[image]
        if image is self._outgoing:
            self._outgoing = None
        if image.done() and not image.exception():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(image.result()[0])

    async def close(self) -> None:
        """Stop building images and delete the one on disk (uploads end with the transport)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        _remove_images(self._opened.snapshotter.dir, outgoing=True, received_upto=-1)

    # ---- receive -------------------------------------------------------------------------
    async def persist(self, snap: Snapshot) -> None:
        """A snapshot from the leader: record it durably before anything depends on it.

        Its image is already durable where the transport put it; the marker goes after
        it, so a crash before the install finds both (snapshot_recovery.py).
        """
        path = self._ctx.inbox.snapshots.get(snap.metadata.index)
        if path is None:
            raise RuntimeError(
                f"snapshot at index {snap.metadata.index} arrived without its db image"
            )

        def persist() -> None:
            self._opened.snapshotter.save(snap.metadata)
            self._opened.wal.save_snapshot(snap.metadata)

        await asyncio.to_thread(persist)
        self._opened.storage.apply_snapshot(snap)

    async def install(self, snap: Snapshot) -> None:
        """Replace the backend with the received image, moved into place (the apply step)."""
        kv = self._opened.kv
        index = snap.metadata.index
        path = self._ctx.inbox.snapshots.get(index)
        if path is None:
            raise RuntimeError(f"snapshot {index} has no received image to install")
        self.installing = True
        try:
            await asyncio.to_thread(functools.partial(kv.restore_from, path, move=True))
        finally:
            self.installing = False
        self._ctx.inbox.snapshots.pop(index, None)
        await asyncio.to_thread(
            _remove_images, self._opened.snapshotter.dir, outgoing=False, received_upto=index
        )
        self._applier.reset(max(index, kv.applied_index()))
        self.snapshot_index = index
        self._ctx.counters.snapshots_installed += 1
        self._ctx.lessor.reload()
        self.on_installed()
        log.info(
            "applied snapshot from leader",
            extra={"fields": {"snapshot-index": index}},
        )
