"""An asyncio loop on a daemon thread, driven from the lab's synchronous code.

The webhook receiver (an aiohttp server) and the writers (aiohttp clients) run this way,
so the lab can keep starting, pausing and killing processes while they serve. `start()`
returns once the loop serves (or raises why it could not); `stop()` sets `stopping`
and joins the thread, bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from lab.procs import Running

log = logging.getLogger(__name__)


class LoopThread(Running):
    """Subclasses implement `serve()`, call `serving()` once ready, and end on `stopping`."""

    thread_name = "lab-loop"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def stopping(self) -> asyncio.Event:
        assert self._stopping is not None, "only inside serve()"
        return self._stopping

    def join_timeout(self) -> float:
        return 10.0

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.thread_name} did not start")
        if self._error is not None:
            raise RuntimeError(f"{self.thread_name} failed: {self._error}") from self._error

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout())

    def serving(self) -> None:
        """Tell `start()` the loop serves."""
        self._ready.set()

    async def serve(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() or logged; never a silent death
            self._error = exc
            self._ready.set()
            log.exception("%s stopped with an error", self.thread_name)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self.serve()
