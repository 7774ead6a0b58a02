"""`--protocol http`: the workloads' requests over etcd's JSON gateway (`/v3/kv/put`, ...).

The hot path joins precomputed JSON bytes (`KeySpace`'s bodies), sends them over
`loadgen.lean_http` (keep-alive sockets on asyncio's Protocol, a few tens of µs of CPU per
request where aiohttp took hundreds) or, for a worker's few client threads, over
`loadgen.blocking_http` (blocking sockets, `blocking=True`), and never parses a successful
answer it does not need; only the watch workload's put reads the revision and a keepalive
its TTL. Set-up, tear-down and watch streams (not measured, or not per request) use
`EtcdClient`.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from loadgen.blocking_http import BlockingHttp
from loadgen.client import EtcdClient, parse_keepalive
from loadgen.conn import WatchBatch
from loadgen.errors import error_from_stream_error
from loadgen.keyspace import fixed_range_body
from loadgen.lean_http import LeanHttp

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from ssl import SSLContext

    from loadgen.conn import Conn
    from loadgen.keyspace import KeySpace


class HttpConn:
    """A keep-alive pool of `limit` sockets to one endpoint (and an aiohttp session, opened
    only when a watch, a lease's grant or revoke, or a status needs it).

    `blocking`: the requests block their thread (`loadgen.blocking_http`), for client
    threads; their coroutines never suspend, so `run_now` completes them.
    """

    def __init__(
        self,
        endpoint: str,
        keys: KeySpace,
        *,
        timeout: float,
        limit: int,
        ssl: SSLContext | None = None,
        blocking: bool = False,
    ) -> None:
        self.client = EtcdClient([endpoint], timeout=timeout, limit=limit, ssl=ssl)
        self.endpoint = self.client.endpoints[0]
        self.lean: LeanHttp | BlockingHttp
        if blocking:
            self.lean = BlockingHttp(self.endpoint, timeout=timeout, ssl=ssl)
        else:
            self.lean = LeanHttp(self.endpoint, timeout=timeout, limit=limit, ssl=ssl)
        self._post = self.lean.post
        self.keys = keys
        self._fixed: dict[tuple[bytes, bytes | None, bool], bytes] = {}

    async def put(self, i: int) -> None:
        await self._post("/v3/kv/put", self.keys.put_body(i))

    async def put_revision(self, i: int) -> int:
        payload = await self._post("/v3/kv/put", self.keys.put_body(i))
        return int(json.loads(payload)["header"]["revision"])

    async def range(self, i: int, *, serializable: bool) -> None:
        body = self.keys.range_body(i, serializable=serializable)
        await self._post("/v3/kv/range", body)

    async def fixed_range(self, key: bytes, end: bytes | None, *, serializable: bool) -> None:
        body = self._fixed.get((key, end, serializable))
        if body is None:
            body = self._fixed[key, end, serializable] = fixed_range_body(
                key, end, serializable=serializable
            )
        await self._post("/v3/kv/range", body)

    async def txn_put(self, first: int, ops: int) -> None:
        await self._post("/v3/kv/txn", self.keys.txn_put_body(first, ops))

    async def lease_grant(self, ttl: int) -> int:
        lease_id, _ttl = await self.client.lease_grant(ttl)
        return lease_id

    async def lease_keepalive(self, lease_id: int) -> None:
        payload = await self._post("/v3/lease/keepalive", b'{"ID":' + str(lease_id).encode() + b"}")
        parse_keepalive(json.loads(payload))

    async def lease_revoke(self, lease_id: int) -> None:
        await self.client.lease_revoke(lease_id)

    @asynccontextmanager
    async def watch(self, key: bytes, end: bytes) -> AsyncIterator[AsyncIterator[WatchBatch]]:
        async with self.client.watch(key, end) as stream:
            yield _batches(stream.raw_lines())

    async def leader_id(self) -> tuple[int, int]:
        status = await self.client.status()
        return status.member_id, status.leader

    async def close(self) -> None:
        await self.lean.close()
        await self.client.close()


async def _batches(lines: AsyncIterator[dict[str, Any]]) -> AsyncIterator[WatchBatch]:
    """The gateway's watch lines as batches; an `{"error": ...}` line raises EtcdError."""
    async for line in lines:
        if line.get("error"):
            raise error_from_stream_error(line["error"])
        result: dict[str, Any] = line.get("result") or {}
        yield WatchBatch(
            created=bool(result.get("created")),
            revisions=[int(ev["kv"]["mod_revision"]) for ev in result.get("events", ())],
        )


if TYPE_CHECKING:

    def _conforms(conn: HttpConn) -> Conn:  # mypy checks HttpConn against the Protocol
        return conn
