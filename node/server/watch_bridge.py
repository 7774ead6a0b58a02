"""One client watch stream: the store's WatchStream, woken on the event loop.

The store's watch hub notifies from whichever thread applied the events; the bridge
moves that wake-up onto the event loop, and the front end iterates `results()`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from node.mvcc import requests as rq
    from node.mvcc.watch import WatchHub


class WatchBridge:
    """One gateway watch stream: the store's WatchStream, woken on the event loop."""

    def __init__(self, hub: WatchHub) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._closed = False

        def on_ready() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._stream = hub.new_stream(on_ready=on_ready)

    def create(self, req: rq.WatchCreateRequest) -> rq.WatchResponse:
        """Create a watcher; its created answer (also queued) names the watch id."""
        created = self._stream.watch(req)
        self._wake.set()
        return created

    def cancel(self, watch_id: int) -> None:
        self._stream.cancel(watch_id)
        self._wake.set()

    def progress(self) -> None:
        self._stream.request_progress()
        self._wake.set()

    async def results(self) -> AsyncIterator[rq.WatchResponse]:
        while not self._closed:
            batch = self._stream.poll()
            if batch:
                for resp in batch:
                    yield resp
                continue
            if self._stream.ready:
                continue
            self._wake.clear()
            if self._stream.ready:
                continue
            await self._wake.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.close()
            self._wake.set()


async def progress_notify_loop(hub: Callable[[], WatchHub], interval: float) -> None:
    """etcd's --experimental-watch-progress-notify-interval, for every stream of the member.

    Each `interval`, every synced watcher created with progress_notify on a stream with
    nothing queued hears an empty response at the current revision, so a client on a
    quiet key learns how far it has seen. `hub` is read each time: a snapshot install
    may replace the store.
    """
    while True:
        await asyncio.sleep(interval)
        hub().progress_notify_all()
