"""The HTTP/1.1 clients of `--protocol http` against a scripted server: the event loop's
(loadgen.lean_http) and the client threads' (loadgen.blocking_http), each test on both
unless it is about one's own machinery (the loop's pool limit, the threads' idle checks).

The server below answers each request with bytes the test chooses, so framing (length,
chunked, close-delimited, split packets), keep-alive reuse and retirement, etcd's error
bodies and the socket's failures (reset, silence, refusal) are each exercised exactly.
The same clients against real etcd 3.4 and raftmon are in test_lean_http_servers.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from loadgen import errors
from loadgen.blocking_http import BlockingHttp, run_now
from loadgen.errors import EtcdError
from loadgen.lean_http import LeanHttp, parse_chunked, parse_head
from tests.helpers import free_port

OK = b'{"header":{"revision":"7"}}'


def answer(body: bytes = OK, status: str = "200 OK", *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for part in parts:
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


CHUNKED = chunked(b'{"a":', b'"b"}')
HEAD = CHUNKED.index(b"\r\n\r\n") + 4  # the third script cuts mid size line, mid data


def etcd_error(status: str, message: str, code: int) -> bytes:
    body = json.dumps({"error": message, "message": message, "code": code}).encode()
    return answer(body, status)


# What the server does with one request: bytes to write (a list: written with a pause
# between them), "close" after answering, "reset" instead of answering, or "silence".
Script = Callable[[int], list[bytes] | str | tuple[list[bytes], str]]


@dataclass
class Scripted:
    """A raw HTTP/1.1 server on a free loopback port running `script` per request."""

    script: Script
    port: int = 0
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)
    server: asyncio.Server | None = None
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                action = self.script(len(self.requests))
                then = ""
                if isinstance(action, tuple):
                    action, then = action
                if action == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if action == "silence":
                    await asyncio.sleep(30)
                    return
                assert isinstance(action, list)
                for i, piece in enumerate(action):
                    if i:
                        await asyncio.sleep(0.02)
                    writer.write(piece)
                    await writer.drain()
                if then == "close":
                    writer.close()
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class OnThread:
    """A BlockingHttp whose requests block a thread of their own, not the event loop the
    scripted server answers on (as a load's client threads use it)."""

    def __init__(self, client: BlockingHttp) -> None:
        self.client = client

    async def post(self, path: str, body: bytes) -> bytes:
        return await asyncio.to_thread(self.client.post_now, path, body)

    async def close(self) -> None:
        await self.client.close()


Client = LeanHttp | OnThread
Factory = Callable[..., Client]


@pytest.fixture(params=["loop", "threads"])
async def lean_factory(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    made: list[Client] = []

    def make(url: str, *, timeout: float = 5.0, limit: int = 4, idle_limit: float = 15) -> Client:
        client: Client
        if request.param == "loop":
            client = LeanHttp(url, timeout=timeout, limit=limit, idle_limit=idle_limit)
        else:
            client = OnThread(BlockingHttp(url, timeout=timeout, idle_limit=idle_limit))
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
async def loop_factory() -> AsyncIterator[Callable[..., LeanHttp]]:
    made: list[LeanHttp] = []

    def make(url: str, *, timeout: float = 5.0, limit: int = 4, idle_limit: float = 15) -> LeanHttp:
        client = LeanHttp(url, timeout=timeout, limit=limit, idle_limit=idle_limit)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


# -- framing ----------------------------------------------------------------------------
def test_parse_head_reads_status_length_chunking_and_keep_alive() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12") == (200, 12, False, True)
    assert parse_head(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length:0\r\nConnection: close")[
        ::3
    ] == (503, False)
    assert parse_head(b"HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked") == (200, -1, True, True)
    assert parse_head(b"HTTP/1.0 200 OK") == (200, -1, False, False)
    assert parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1")[3]


def test_parse_chunked_waits_for_the_last_chunk_and_skips_extensions() -> None:
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert parse_chunked(body, 0) == (b"hello world", len(body))
    for cut in range(len(body)):
        assert parse_chunked(body[:cut], 0) is None
    with_trailer = b"1\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n"
    assert parse_chunked(with_trailer, 0) == (b"x", len(with_trailer))


async def test_keep_alive_carries_every_request_on_one_socket(lean_factory: Factory) -> None:
    async with Scripted(lambda n: [answer(b'{"n":"%d"}' % n)]) as server:
        client = lean_factory(server.url)
        for n in range(1, 6):
            assert await client.post("/v3/kv/put", b'{"key":"YQ=="}') == b'{"n":"%d"}' % n
    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /v3/kv/put HTTP/1.1\r\n")
    assert b"Content-Length: 14\r\n" in head
    assert b"Content-Type: application/json\r\n" in head
    assert body == b'{"key":"YQ=="}'


async def test_answers_split_across_packets_and_chunked_answers_are_read_whole(
    lean_factory: Factory,
) -> None:
    full = answer(b'{"big":"' + b"x" * 5000 + b'"}')
    scripts = {
        1: [full[:10], full[10:40], full[40:]],  # head split, body split
        2: [chunked(b'{"a":', b'"b"}')],
        3: [CHUNKED[: HEAD + 1], CHUNKED[HEAD + 1 : HEAD + 6], CHUNKED[HEAD + 6 :]],
    }
    async with Scripted(lambda n: scripts[n]) as server:
        client = lean_factory(server.url)
        assert json.loads(await client.post("/v3/kv/range", b"{}"))["big"] == "x" * 5000
        assert await client.post("/v3/kv/range", b"{}") == b'{"a":"b"}'
        assert await client.post("/v3/kv/range", b"{}") == b'{"a":"b"}'
    assert server.connections == 1


async def test_an_answer_without_length_ends_with_its_connection(lean_factory: Factory) -> None:
    def script(n: int) -> tuple[list[bytes], str]:
        return [b"HTTP/1.0 200 OK\r\n\r\n", b'{"close":"delimited"}'], "close"

    async with Scripted(script) as server:
        client = lean_factory(server.url)
        assert await client.post("/v3/kv/put", b"{}") == b'{"close":"delimited"}'
        assert await client.post("/v3/kv/put", b"{}") == b'{"close":"delimited"}'
    assert server.connections == 2


async def test_interim_100_continue_is_skipped(lean_factory: Factory) -> None:
    async with Scripted(lambda n: [b"HTTP/1.1 100 Continue\r\n\r\n" + answer()]) as server:
        assert await lean_factory(server.url).post("/v3/kv/put", b"{}") == OK


# -- etcd's error bodies ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "kind", "status", "code"),
    [
        (etcd_error("503 Service Unavailable", "etcdserver: no leader", 14), "no_leader", 503, 14),
        (
            etcd_error("400 Bad Request", "etcdserver: request is too large", 3),
            "too_large",
            400,
            3,
        ),
        (
            etcd_error("429 Too Many Requests", "etcdserver: mvcc: database space exceeded", 8),
            "no_space",
            429,
            8,
        ),
        (
            etcd_error("503 Service Unavailable", "etcdserver: request timed out", 14),
            "timeout",
            503,
            14,
        ),
        (answer(b"404 page not found\n", "404 Not Found"), "other", 404, 0),
        (answer(b"", "500 Internal Server Error"), "other", 500, 0),
    ],
)
async def test_non_200_answers_are_counted_by_etcds_message(
    lean_factory: Factory,
    raw: bytes,
    kind: str,
    status: int,
    code: int,
) -> None:
    async with Scripted(lambda n: [raw] if n == 1 else [answer()]) as server:
        client = lean_factory(server.url)
        with pytest.raises(EtcdError) as caught:
            await client.post("/v3/kv/put", b"{}")
        assert (caught.value.kind, caught.value.status, caught.value.code) == (kind, status, code)
        assert await client.post("/v3/kv/put", b"{}") == OK  # the socket stays usable
    assert server.connections == 1


# -- the socket's failures --------------------------------------------------------------
async def test_connection_close_retires_the_socket(lean_factory: Factory) -> None:
    async with Scripted(lambda n: ([answer(OK, "200 OK", "Connection: close")], "close")) as server:
        client = lean_factory(server.url)
        for _ in range(3):
            assert await client.post("/v3/kv/put", b"{}") == OK
    assert server.connections == 3


async def test_a_keep_alive_socket_the_server_closed_while_idle_is_not_reused(
    loop_factory: Callable[..., LeanHttp],
) -> None:
    """Servers drop idle keep-alive sockets (Go: IdleTimeout) without saying so first."""
    async with Scripted(lambda n: ([answer()], "close")) as server:
        client = loop_factory(server.url)
        assert await client.post("/v3/kv/put", b"{}") == OK
        await wait_until(lambda: not client._idle or not client._idle[0].open)
        assert await client.post("/v3/kv/put", b"{}") == OK
    assert server.connections == 2


async def test_a_socket_idle_past_the_idle_limit_is_retired_by_the_client(
    loop_factory: Callable[..., LeanHttp],
) -> None:
    async with Scripted(lambda n: [answer()]) as server:
        client = loop_factory(server.url, idle_limit=0.05)
        assert await client.post("/v3/kv/put", b"{}") == OK
        assert await client.post("/v3/kv/put", b"{}") == OK  # at once: the same socket
        await asyncio.sleep(0.2)
        assert await client.post("/v3/kv/put", b"{}") == OK
        await wait_until(lambda: server.connections == 2)
        assert client._count == 1
    assert server.connections == 2


async def test_a_reset_mid_request_is_conn_lost_and_the_next_request_reconnects(
    lean_factory: Factory,
) -> None:
    async with Scripted(lambda n: "reset" if n == 2 else [answer()]) as server:
        client = lean_factory(server.url)
        assert await client.post("/v3/kv/put", b"{}") == OK
        with pytest.raises(EtcdError) as caught:
            await client.post("/v3/kv/put", b"{}")
        assert caught.value.kind == errors.CONN_LOST
        assert await client.post("/v3/kv/put", b"{}") == OK
    assert server.connections == 2


async def test_a_close_mid_answer_is_conn_lost(lean_factory: Factory) -> None:
    async with Scripted(lambda n: ([answer()[:30]], "close")) as server:
        with pytest.raises(EtcdError) as caught:
            await lean_factory(server.url).post("/v3/kv/put", b"{}")
    assert caught.value.kind == errors.CONN_LOST


async def test_a_silent_server_is_a_timeout_and_its_socket_is_dropped(
    lean_factory: Factory,
) -> None:
    async with Scripted(lambda n: "silence" if n == 1 else [answer()]) as server:
        client = lean_factory(server.url, timeout=0.3)
        with pytest.raises(EtcdError) as caught:
            await client.post("/v3/kv/put", b"{}")
        assert caught.value.kind == errors.TIMEOUT
        assert await client.post("/v3/kv/put", b"{}") == OK  # a new socket: no late answer
    assert server.connections == 2


async def test_garbage_is_other_not_a_crash(lean_factory: Factory) -> None:
    async with Scripted(lambda n: [b"SSH-2.0-OpenSSH\r\n\r\n"] if n == 1 else [answer()]) as server:
        client = lean_factory(server.url)
        with pytest.raises(EtcdError) as caught:
            await client.post("/v3/kv/put", b"{}")
        assert caught.value.kind == errors.OTHER
        assert await client.post("/v3/kv/put", b"{}") == OK


async def test_a_closed_port_is_conn_refused(lean_factory: Factory) -> None:
    client = lean_factory(f"http://127.0.0.1:{free_port()}")
    for _ in range(2):
        with pytest.raises(EtcdError) as caught:
            await client.post("/v3/kv/put", b"{}")
        assert caught.value.kind == errors.CONN_REFUSED


async def test_the_pool_opens_at_most_limit_sockets(
    loop_factory: Callable[..., LeanHttp],
) -> None:
    async with Scripted(lambda n: [answer()]) as server:
        client = loop_factory(server.url, limit=2)
        results = await asyncio.gather(*(client.post("/v3/kv/put", b"{}") for _ in range(20)))
        assert results == [OK] * 20
    assert server.connections <= 2


# -- the client threads' blocking sockets ---------------------------------------------
async def test_a_blocking_socket_the_server_closed_while_idle_is_not_reused() -> None:
    """No callback tells a blocking socket of the close: a peek before its next request."""
    async with Scripted(lambda n: ([answer()], "close")) as server:
        client = BlockingHttp(server.url, timeout=5.0)
        try:
            assert await asyncio.to_thread(client.post_now, "/v3/kv/put", b"{}") == OK
            await wait_until(lambda: all(task.done() for task in server.handlers))
            await asyncio.sleep(0.05)  # idle past CHECK_AFTER: checked before reuse
            assert await asyncio.to_thread(client.post_now, "/v3/kv/put", b"{}") == OK
        finally:
            await client.close()
    assert client.connects == server.connections == 2


async def test_blocking_sockets_past_the_idle_limit_are_retired_and_kept_ones_reused() -> None:
    async with Scripted(lambda n: [answer()]) as server:
        client = BlockingHttp(server.url, timeout=5.0, idle_limit=0.1)
        try:
            for _ in range(3):  # at once, and after a pause under the limit: one socket
                assert await asyncio.to_thread(client.post_now, "/v3/kv/put", b"{}") == OK
                await asyncio.sleep(0.03)
            assert client.connects == 1
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(client.post_now, "/v3/kv/put", b"{}") == OK
        finally:
            await client.close()
    assert client.connects == server.connections == 2


async def test_client_threads_each_carry_their_request_on_a_socket_of_their_own() -> None:
    """Threads sharing one BlockingHttp: no socket carries two requests at once."""
    async with Scripted(lambda n: [answer(b'{"n":"%d"}' % n)]) as server:
        client = BlockingHttp(server.url, timeout=5.0)
        answers: list[bytes] = []
        lock = threading.Lock()

        def client_thread() -> None:
            for _ in range(20):
                body = run_now(client.post("/v3/kv/put", b"{}"))
                with lock:
                    answers.append(body)

        try:
            await asyncio.gather(*(asyncio.to_thread(client_thread) for _ in range(3)))
        finally:
            await client.close()
    assert sorted(answers) == sorted(b'{"n":"%d"}' % n for n in range(1, 61))
    assert 1 <= client.connects <= 3


def test_run_now_completes_a_coroutine_that_never_suspends_and_refuses_one_that_does() -> None:
    async def answer_at_once() -> int:
        return 7

    async def wait_for_the_loop() -> None:
        await asyncio.sleep(0)

    assert run_now(answer_at_once()) == 7
    with pytest.raises(RuntimeError, match="waited for the event loop"):
        run_now(wait_for_the_loop())
