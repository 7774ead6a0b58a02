"""A trivial etcd-shaped HTTP endpoint: fixed answers, counters, and a stall switch.

Used where a real member would only add noise: scheduler tests (count what was
sent), worker-merge tests, and the generator benchmark (how many requests/s one
worker can produce when the server costs almost nothing). Runs in a background
thread (`FakeEtcd`) or as its own process (`python -m tests.loadgen.fake_etcd PORT`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading

from aiohttp import web

from tests.helpers import free_port

PUT_ANSWER = b'{"header":{"cluster_id":"1","member_id":"2","revision":"%d","raft_term":"2"}}'
RANGE_ANSWER = b'{"header":{"cluster_id":"1","member_id":"2","revision":"2","raft_term":"2"}}'
NO_LEADER = b'{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}'


class FakeState:
    """What the fake server has seen, and how it should answer."""

    def __init__(self) -> None:
        self.puts = 0
        self.ranges = 0
        self.revision = 1
        self.fail_every = 0  # answer "no leader" to every n-th put (0 = never)
        self.gate: asyncio.Event | None = None  # when set up and clear, requests wait

    async def wait_gate(self) -> None:
        if self.gate is not None:
            await self.gate.wait()


def make_app(state: FakeState) -> web.Application:
    async def put(request: web.Request) -> web.Response:
        await request.read()
        await state.wait_gate()
        state.puts += 1
        if state.fail_every and state.puts % state.fail_every == 0:
            return web.Response(status=503, body=NO_LEADER, content_type="application/json")
        state.revision += 1
        return web.Response(body=PUT_ANSWER % state.revision, content_type="application/json")

    async def range_(request: web.Request) -> web.Response:
        await request.read()
        await state.wait_gate()
        state.ranges += 1
        return web.Response(body=RANGE_ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v3/kv/put", put)
    app.router.add_post("/v3/kv/range", range_)
    return app


class FakeEtcd:
    """The fake server on a free loopback port, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = FakeState()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeEtcd:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(make_app(self.state), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stall(self) -> None:
        """From now on requests wait until `release()`."""

        def make() -> None:
            self.state.gate = asyncio.Event()

        self._loop.call_soon_threadsafe(make)

    def release(self) -> None:
        def open_gate() -> None:
            if self.state.gate is not None:
                self.state.gate.set()
                self.state.gate = None

        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(open_gate)


def main(argv: list[str]) -> int:
    """Serve the fake on PORT until killed (the benchmark runs it in its own process)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)

    async def serve() -> None:
        runner = web.AppRunner(make_app(FakeState()), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        await asyncio.Event().wait()

    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as loop_runner:
        loop_runner.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
