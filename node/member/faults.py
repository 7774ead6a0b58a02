"""The lab's fault-injection endpoints (metrics listener, --enable-fault-injection only).

GET shows the faults in force, POST changes some, DELETE clears them all. Every
change is logged at WARNING, so a member's log says when it was being slowed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from node.member.http import SERVER, json_response

if TYPE_CHECKING:
    from aiohttp import web

    from node.server import EtcdServer

log = logging.getLogger(__name__)


async def get_faults(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    return json_response(fault_state(server))


def fault_state(server: EtcdServer) -> dict[str, Any]:
    peers = {
        f"{peer:x}": {"delay_seconds": f.delay_seconds, "drop": f.drop}
        for peer, f in server.transport.faults().items()
        if f.delay_seconds or f.drop
    }
    return {
        "wal_fsync_delay_seconds": server.wal.fsync_delay_seconds,
        "ticks_paused": server.faults.ticks_paused,
        "peers": peers,
    }


async def set_faults(request: web.Request) -> web.Response:
    """POST {"wal_fsync_delay_seconds": 0.03, "ticks_paused": false,
    "peers": {"<member id hex or name>": {"delay_seconds": 0.05, "drop": false}}}.

    Fields left out keep their value; DELETE clears everything.
    """
    server = request.app[SERVER]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        if "wal_fsync_delay_seconds" in body:
            server.set_fsync_delay(fault_delay(body["wal_fsync_delay_seconds"], "wal_fsync"))
        if "ticks_paused" in body:
            server.faults.ticks_paused = bool(body["ticks_paused"])
        for key, spec in dict(body.get("peers") or {}).items():
            peer = resolve_member(server, str(key))
            if not isinstance(spec, dict):
                raise ValueError(f"peer {key!r}: expected an object")
            delay = fault_delay(spec.get("delay_seconds", 0.0), "delay")
            server.transport.set_fault(
                peer, delay_seconds=delay, drop=bool(spec.get("drop", False))
            )
    except (ValueError, TypeError, KeyError) as err:
        return json_response({"error": str(err), "message": str(err), "code": 3}, 400)
    log.warning("fault injection changed", extra={"fields": fault_state(server)})
    return json_response(fault_state(server))


MAX_FAULT_DELAY_SECONDS = 60.0


def fault_delay(value: Any, name: str) -> float:
    """A lab delay: a JSON number of seconds in [0, 60], refused otherwise.

    Without the bound, 1e308 s overflows the first timer that uses it and kills the
    member, and NaN or a negative delay make no sense to anyone reading the lab.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}_seconds must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not 0.0 <= seconds <= MAX_FAULT_DELAY_SECONDS:  # NaN fails both comparisons
        raise ValueError(
            f"{name}_seconds must be between 0 and {MAX_FAULT_DELAY_SECONDS:g}, got {value!r}"
        )
    return seconds


async def clear_faults(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    server.set_fsync_delay(0.0)
    server.faults.ticks_paused = False
    server.transport.clear_faults()
    log.warning("fault injection cleared")
    return json_response(fault_state(server))


def resolve_member(server: EtcdServer, key: str) -> int:
    """A member by name or id: the current members first (one added at run time has no
    entry in --initial-cluster), then the initial cluster."""
    known = [(m.name, m.id) for m in server.membership.sorted()]
    known += [(spec.name, spec.member_id) for spec in server.cfg.members]
    for name, member_id in known:
        if key in (name, f"{member_id:x}", str(member_id)):
            if member_id == server.member_id:
                raise ValueError("a member cannot fault its own traffic")
            return member_id
    raise KeyError(f"unknown member {key!r}")
