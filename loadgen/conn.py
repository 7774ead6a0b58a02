"""One load connection, whatever the protocol: the calls a workload makes, and how to open one.

The workloads and the runner speak to a `Conn`; `--protocol` picks its implementation:
`http` (`loadgen.http_conn`, etcd's JSON gateway over an aiohttp keep-alive pool) or
`grpc` (`loadgen.grpc_conn`, etcd's native API over one HTTP/2 channel, as etcd's own
`benchmark` tool talks). Both fail the same way, with an `EtcdError` whose `kind` is one of
`loadgen.errors.ERROR_KINDS`, so reports from the two protocols compare line for line.

Requests name keys by their index in the run's `KeySpace`, so each implementation can
prepare its encoding of the key once (base64 JSON or protobuf bytes), not per request.
`loadgen.connect.open_conn` opens the one the run's `--protocol` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One message of a watch stream: whether it confirms the watch, and its events' revisions."""

    created: bool = False
    revisions: list[int] = field(default_factory=list)


class Conn(Protocol):
    """The requests of every workload on one connection to one endpoint."""

    endpoint: str

    async def put(self, i: int) -> None:
        """Put key `i` of the key space with the run's value."""

    async def put_revision(self, i: int) -> int:
        """Put key `i` and return the revision the put created (the watch workload's match)."""

    async def range(self, i: int, *, serializable: bool) -> None:
        """Read key `i` (linearizable unless `serializable`)."""

    async def fixed_range(self, key: bytes, end: bytes | None, *, serializable: bool) -> None:
        """Read `[key, end)` (or `key` alone): `range KEY [END]`, the same request each time."""

    async def txn_put(self, first: int, ops: int) -> None:
        """A txn whose success branch puts `ops` consecutive keys starting at `first`."""

    async def lease_grant(self, ttl: int) -> int:
        """Grant a lease of `ttl` seconds; its ID."""

    async def lease_keepalive(self, lease_id: int) -> None:
        """Refresh the lease once; raise when it is gone."""

    async def lease_revoke(self, lease_id: int) -> None: ...

    def watch(
        self, key: bytes, end: bytes
    ) -> AbstractAsyncContextManager[AsyncIterator[WatchBatch]]:
        """A watch of `[key, end)`: `async with` opens it, iterating yields its messages."""

    async def leader_id(self) -> tuple[int, int]:
        """(this member's ID, the leader it knows of), from Maintenance.Status."""

    async def close(self) -> None: ...
