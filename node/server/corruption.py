"""etcd's corruption checks (etcd 3.4, etcdserver/corrupt.go), over HashKV.

Every member applies the same entries, so at the same revision and compact revision every
member's HashKV (node/mvcc/hash.py) is the same number; a difference means a member's
store no longer holds what Raft decided (a flipped byte, an edited file, a bug).

- `--experimental-initial-corrupt-check`: a member that already has data compares its
  HashKV at its current revision with each peer's at that revision before it starts; a
  different hash at the same compact revision stops it (`CorruptionError`). Peers that
  cannot answer (down, behind, compacted past it) are logged and skipped, as etcd does.
- `--experimental-corrupt-check-time`: every interval, the leader hashes its store, asks
  every peer's HashKV at that revision over the peer URL (GET /members/hashkv, etcd's
  endpoint and JSON), waits for a linearizable read point, hashes again, and raises the
  CORRUPT alarm through Raft when its own two hashes differ at the same revisions, when
  a peer is ahead of it (revision or compact revision), or when a peer at the same
  compact revision has another hash. As in etcd 3.4.23, the alarm names member 0: which
  side is corrupt is not known (the log names the member that differed). With the alarm
  raised every member refuses KV and lease requests with ErrCorrupt until it is disarmed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from node.errors import ErrCompacted, ErrFutureRev
from node.mvcc import requests as rq
from node.transport.peerclient import PeerRequestFailed

if TYPE_CHECKING:
    from node.config import MemberConfig
    from node.mvcc.store import KVStore
    from node.transport import Transport

log = logging.getLogger(__name__)


class CheckedServer(Protocol):
    """What the checks use of EtcdServer (which builds the checker, so it is not imported)."""

    @property
    def member_id(self) -> int: ...

    @property
    def peer_ids(self) -> tuple[int, ...]: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def cfg(self) -> MemberConfig: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def kv(self) -> KVStore: ...

    async def hash_kv(self, revision: int) -> rq.HashKVResponse: ...

    async def read_barrier(self) -> None: ...

    async def propose(self, request: Any) -> Any: ...


class CorruptionError(Exception):
    """The initial check found this member's data different from a peer's."""


@dataclass(frozen=True, slots=True)
class PeerHash:
    """One peer's HashKV answer, or why there is none (ErrCompacted, ErrFutureRev, ...)."""

    member_id: int
    resp: rq.HashKVResponse | None
    error: Exception | None = None


# ---- the peer endpoint's wire form (Go's encoding/json of etcdserverpb messages) --------
def mvcc_error_text(err: Exception) -> str:
    """etcd's peer handler answers mvcc's own error text (no "etcdserver: " prefix)."""
    return str(err).removeprefix("etcdserver: ")


def parse_peer_request(body: bytes) -> int:
    """The revision of a GET /members/hashkv body ({"revision": N}; {} or empty: 0)."""
    data: Any = json.loads(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("not an object")
    revision = data.get("revision", 0)
    if revision is None:
        return 0
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise ValueError("revision is not an integer")  # Go's json refuses "5" for an int64
    return revision


def peer_answer(resp: rq.HashKVResponse) -> dict[str, Any]:
    """HashKVResponse as etcd's peer handler writes it: numbers, zero fields left out."""
    out: dict[str, Any] = {"header": {"revision": resp.revision} if resp.revision else {}}
    if resp.hash:
        out["hash"] = resp.hash
    if resp.compact_revision:
        out["compact_revision"] = resp.compact_revision
    return out


def parse_peer_answer(status: int, text: str) -> rq.HashKVResponse:
    """A peer's answer; ErrCompacted / ErrFutureRev for etcd's 400s, PeerRequestFailed else."""
    if status == 400:
        if mvcc_error_text(ErrCompacted()) in text:
            raise ErrCompacted
        if mvcc_error_text(ErrFutureRev()) in text:
            raise ErrFutureRev
    if status != 200:
        raise PeerRequestFailed(f"unknown error: {text.strip()}")
    try:
        data = json.loads(text)
        header = data.get("header") or {}
        return rq.HashKVResponse(
            revision=int(header.get("revision", 0)),
            hash=int(data.get("hash", 0)),
            compact_revision=int(data.get("compact_revision", 0)),
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise PeerRequestFailed(f"bad answer: {err}") from None


# ---- the checks ------------------------------------------------------------------------
class CorruptionChecker:
    """The initial and the periodic check of one member (the periodic one acts on the leader)."""

    def __init__(self, server: CheckedServer) -> None:
        self.server = server
        self._id = f"{server.member_id:x}"

    async def peer_hashes(self, revision: int) -> list[PeerHash]:
        """Every peer's HashKV at `revision`, asked concurrently, each bounded in time."""
        timeout = self.server.cfg.request_timeout_seconds
        client = self.server.transport.client

        async def ask(member_id: int) -> PeerHash:
            try:
                status, text = await client.hash_kv_of(member_id, revision, timeout)
                return PeerHash(member_id, parse_peer_answer(status, text))
            except (PeerRequestFailed, ErrCompacted, ErrFutureRev) as err:
                if not isinstance(err, (ErrCompacted, ErrFutureRev)):
                    log.warning(
                        "failed hash kv request",
                        extra={
                            "fields": {
                                "local-member-id": self._id,
                                "requested-revision": revision,
                                "remote-peer-id": f"{member_id:x}",
                                "error": str(err),
                            }
                        },
                    )
                return PeerHash(member_id, None, err)

        return list(await asyncio.gather(*(ask(m) for m in self.server.peer_ids)))

    async def initial_check(self) -> None:
        """etcd's CheckInitialHashKV: raise CorruptionError on a mismatch with any peer."""
        log.info(
            "starting initial corruption check",
            extra={"fields": {"local-member-id": self._id}},
        )
        mine = await self.server.hash_kv(0)
        mismatch = 0
        for peer in await self.peer_hashes(mine.revision):
            fields = {
                "local-member-id": self._id,
                "local-member-revision": mine.revision,
                "local-member-compact-revision": mine.compact_revision,
                "local-member-hash": mine.hash,
                "remote-peer-id": f"{peer.member_id:x}",
            }
            if peer.resp is None:
                if isinstance(peer.error, ErrFutureRev):
                    log.warning("cannot fetch hash from slow remote peer", extra={"fields": fields})
                elif isinstance(peer.error, ErrCompacted):
                    log.warning(
                        "cannot fetch hash from remote peer; local member is behind",
                        extra={"fields": fields},
                    )
                continue
            fields |= {
                "remote-peer-revision": peer.resp.revision,
                "remote-peer-compact-revision": peer.resp.compact_revision,
                "remote-peer-hash": peer.resp.hash,
            }
            if peer.resp.hash == mine.hash:
                continue
            if peer.resp.compact_revision == mine.compact_revision:
                log.error("found different hash values from remote peer", extra={"fields": fields})
                mismatch += 1
            else:
                log.warning(
                    "found different compact revision values from remote peer",
                    extra={"fields": fields},
                )
        if mismatch:
            raise CorruptionError(f"{self._id} found data inconsistency with peers")
        log.info(
            "initial corruption checking passed; no corruption",
            extra={"fields": {"local-member-id": self._id}},
        )

    async def check(self) -> bool:
        """etcd's checkHashKV, on the leader: True when it raised the CORRUPT alarm."""
        first = await self.server.hash_kv(0)
        peers = await self.peer_hashes(first.revision)
        await asyncio.wait_for(self.server.read_barrier(), self.server.cfg.request_timeout_seconds)
        second = await self.server.hash_kv(0)
        suspects: list[tuple[str, dict[str, Any]]] = []
        if (
            second.hash != first.hash
            and second.revision == first.revision
            and second.compact_revision == first.compact_revision
        ):
            suspects.append(
                (
                    "found hash mismatch",
                    {
                        "revision": first.revision,
                        "compact-revision": first.compact_revision,
                        "hash-1": first.hash,
                        "hash-2": second.hash,
                        "suspect-member-id": self._id,
                    },
                )
            )
        checked = 0
        for peer in peers:
            if peer.resp is None:
                continue
            checked += 1
            got, member = peer.resp, f"{peer.member_id:x}"
            if got.revision > second.revision:
                suspects.append(
                    (
                        "revision from follower must be less than or equal to leader's",
                        {
                            "leader-revision": second.revision,
                            "follower-revision": got.revision,
                            "follower-peer-id": member,
                        },
                    )
                )
            if got.compact_revision > second.compact_revision:
                suspects.append(
                    (
                        "compact revision from follower must be less than or equal to leader's",
                        {
                            "leader-compact-revision": second.compact_revision,
                            "follower-compact-revision": got.compact_revision,
                            "follower-peer-id": member,
                        },
                    )
                )
            if got.compact_revision == first.compact_revision and got.hash != first.hash:
                suspects.append(
                    (
                        "same compact revision then hashes must match",
                        {
                            "revision": first.revision,
                            "leader-compact-revision": first.compact_revision,
                            "leader-hash": first.hash,
                            "follower-compact-revision": got.compact_revision,
                            "follower-hash": got.hash,
                            "follower-peer-id": member,
                        },
                    )
                )
        for message, fields in suspects:
            log.error(message, extra={"fields": fields})
        log.info(
            "finished peer corruption check",
            extra={"fields": {"number-of-peers-checked": checked}},
        )
        if not suspects:
            return False
        await self._raise_alarm()
        return True

    async def _raise_alarm(self) -> None:
        if any(name == "CORRUPT" for _, name in self.server.kv.alarms()):
            return  # already raised (and replicated): nothing to propose
        log.error(
            "raising the CORRUPT alarm: members' stores differ",
            extra={"fields": {"local-member-id": self._id}},
        )
        await asyncio.wait_for(
            self.server.propose(
                rq.AlarmRequest(
                    action=rq.AlarmAction.ACTIVATE, member_id=0, alarm=rq.AlarmType.CORRUPT
                )
            ),
            self.server.cfg.request_timeout_seconds,
        )

    async def run(self, interval: float) -> None:
        """etcd's monitorKVHash: check every `interval` seconds while this member leads."""
        log.info(
            "enabled corruption checking",
            extra={"fields": {"local-member-id": self._id, "interval": f"{interval}s"}},
        )
        while True:
            await asyncio.sleep(interval)
            if not self.server.is_leader:
                continue
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("failed to check hash KV", extra={"fields": {"error": repr(err)}})
