"""Real transports on real peer ports on loopback, and a recorder to await their events.

A member's peer port is served as `raftmon node` serves it (node.transport.peerport:
streams and upgraded probes on plain asyncio, everything else handed to aiohttp); with
`inbound="aiohttp"` aiohttp alone serves it (a stream request reaching aiohttp, e.g. on a
kept-alive connection, is served by the receiver's aiohttp handlers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from node.raft.messages import Message
from node.transport import Transport, TransportOptions
from node.transport.peerport import PeerPort
from tests.helpers import free_port

CLUSTER_ID = 0x5EED_C1A5_7E12
# Short backoff and probe intervals keep the tests quick; everything else is the default.
FAST = TransportOptions(backoff_initial=0.01, backoff_max=0.2, probe_interval=0.2)


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Poll state that has no event of its own (stats, connection state), bounded in time."""
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 - polled state has no event to await
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {within}s waiting for {what}") from None


@dataclass
class Recorder:
    """Everything a member's transport reported, plus an event to wait on any change."""

    messages: list[Message] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    active: list[int] = field(default_factory=list)  # each time our stream to it connected
    snapshot_status: list[tuple[int, bool]] = field(default_factory=list)
    snapshots: list[tuple[Message, str, bytes]] = field(default_factory=list)
    rtts: dict[int, list[float]] = field(default_factory=dict)  # every answered probe
    srtts: dict[int, list[float]] = field(default_factory=dict)  # the monitor's observations
    refused: list[str] = field(default_factory=list)  # admission refusal reasons
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, msg: Message) -> None:
        self.messages.append(msg)
        self.changed.set()

    def on_unreachable(self, peer: int) -> None:
        self.unreachable.append(peer)
        self.changed.set()

    def on_active(self, peer: int) -> None:
        self.active.append(peer)
        self.changed.set()

    def on_snapshot_status(self, peer: int, failed: bool) -> None:
        self.snapshot_status.append((peer, failed))
        self.changed.set()

    def on_snapshot(self, msg: Message, path: str) -> None:
        with open(path, "rb") as f:
            self.snapshots.append((msg, path, f.read()))
        self.changed.set()

    # TransportObserver
    def on_rtt(self, peer_id: int, seconds: float) -> None:
        self.srtts.setdefault(peer_id, []).append(seconds)
        self.changed.set()

    def on_probe(self, peer_id: int, seconds: float) -> None:
        self.rtts.setdefault(peer_id, []).append(seconds)
        self.changed.set()

    def on_snapshot_sent(self, peer_id: int, seconds: float, ok: bool) -> None:
        return None

    def on_snapshot_received(self, peer_id: int, seconds: float, ok: bool) -> None:
        return None

    def on_peer_refused(self, reason: str) -> None:
        self.refused.append(reason)
        self.changed.set()

    def from_peer(self, peer: int) -> list[Message]:
        return [m for m in self.messages if m.frm == peer]

    async def wait(self, predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
        """Wake on every recorded event until `predicate` holds; fail after `within` s."""
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {within}s waiting for {what}") from None


@dataclass
class Member:
    """One member's transport served by its own aiohttp peer listener."""

    id: int
    port: int
    rec: Recorder
    transport: Transport
    runner: web.AppRunner | None = None
    listener: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop as a member does: listener shutdown (closes inbound streams), then transport."""
        if self.listener is not None:
            listener, self.listener = self.listener, None
            listener.close()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
        await self.transport.stop()


class Cluster:
    """N members that know each other's URLs; restartable one by one on the same port."""

    def __init__(
        self,
        n: int,
        snapshot_root: str,
        options: TransportOptions = FAST,
        heartbeat_interval: float = 0.1,
        cluster_id: int = CLUSTER_ID,
        inbound: str = "raw",
    ) -> None:
        self.inbound = inbound  # "raw": the member's peer port; "aiohttp": aiohttp alone
        self.ports = {i: free_port() for i in range(1, n + 1)}
        self.urls = {i: f"http://127.0.0.1:{p}" for i, p in self.ports.items()}
        self.options = options
        self.heartbeat_interval = heartbeat_interval
        self.cluster_id = cluster_id
        self.snapshot_root = snapshot_root
        self.members: dict[int, Member] = {}

    def build(self, member_id: int, **overrides: object) -> Member:
        """A member whose transport is constructed but not served or started yet.

        `overrides` replace the cluster's `cluster_id`, or the Recorder's `on_message` /
        `on_snapshot` callbacks (a test's own handler, or None for no snapshot handler).
        """
        rec = Recorder()
        transport = Transport(
            member_id,
            overrides.get("cluster_id", self.cluster_id),  # type: ignore[arg-type]
            self.urls,
            overrides.get("on_message", rec.on_message),  # type: ignore[arg-type]
            overrides.get("on_snapshot", rec.on_snapshot),  # type: ignore[arg-type]
            rec.on_unreachable,
            rec.on_snapshot_status,
            f"{self.snapshot_root}/member-{member_id}",
            self.heartbeat_interval,
            options=self.options,
            observer=rec,
            on_active=rec.on_active,
        )
        return Member(member_id, self.ports[member_id], rec, transport)

    async def serve(self, member: Member) -> Member:
        app = web.Application()
        member.transport.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            if self.inbound == "aiohttp":
                await web.TCPSite(runner, "127.0.0.1", member.port).start()
            else:
                port = PeerPort(member.transport)
                assert runner.server is not None
                port.serve_http(runner.server)
                member.listener = await asyncio.get_running_loop().create_server(
                    port.protocol, "127.0.0.1", member.port, reuse_address=True
                )
        except BaseException:
            await runner.cleanup()
            raise
        member.runner = runner
        await member.transport.start()
        self.members[member.id] = member
        return member

    async def start(self, member_id: int, **overrides: object) -> Member:
        return await self.serve(self.build(member_id, **overrides))

    async def start_all(self) -> None:
        for member_id in self.ports:
            await self.start(member_id)

    async def wait_connected(self, within: float = 10.0) -> None:
        """Every running member has an active outbound stream to every other running one."""

        def connected() -> bool:
            return all(
                m.transport.stats()[p].active
                for m in self.members.values()
                for p in self.members
                if p != m.id
            )

        await eventually(connected, "all streams connected", within)

    async def close(self) -> None:
        for member in list(self.members.values()):
            await member.stop()
        self.members.clear()
