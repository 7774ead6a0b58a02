"""Opening a `loadgen.conn.Conn` of the run's `--protocol`, and finding the leader through one.

Apart from `loadgen.conn` so the two implementations can import the Protocol's types
while this module imports them (no import cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.errors import EtcdError
from loadgen.http_conn import HttpConn

if TYPE_CHECKING:
    from loadgen.config import LoadConfig
    from loadgen.conn import Conn
    from loadgen.keyspace import KeySpace


def open_conn(
    cfg: LoadConfig, endpoint: str, keys: KeySpace, limit: int, *, blocking: bool = False
) -> Conn:
    """A connection of `cfg.protocol` to `endpoint`; `limit` = requests it carries at once.

    HTTP/1.1 needs a socket per concurrent request, so the HTTP pool holds `limit` of them;
    one gRPC channel multiplexes them all, as one of etcd benchmark's `--conns`.
    `blocking` (HTTP only): for client threads, see `loadgen.config.client_threads`.
    """
    if cfg.protocol == "grpc":
        from loadgen.grpc_conn import GrpcConn  # grpc's C core loads only when asked for

        return GrpcConn(
            endpoint, keys, timeout=cfg.timeout, cacert=cfg.cacert, cert=cfg.cert, key=cfg.key
        )
    return HttpConn(
        endpoint, keys, timeout=cfg.timeout, limit=limit, ssl=cfg.ssl_context(), blocking=blocking
    )


async def leader_endpoint(cfg: LoadConfig, keys: KeySpace) -> str | None:
    """The endpoint among `cfg.endpoints` whose member reports being the leader, or None."""
    for endpoint in cfg.endpoints:
        conn = open_conn(cfg, endpoint, keys, 1)
        try:
            member, leader = await conn.leader_id()
        except EtcdError:
            continue
        finally:
            await conn.close()
        if member and member == leader:
            return endpoint
    return None
