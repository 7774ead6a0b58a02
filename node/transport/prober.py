"""RTT probes timed and answered outside the member's interpreter, as etcd's prober does.

etcd measures etcd_network_peer_round_trip_time_seconds with a goroutine of its own on
both ends, so a busy apply never shows up as network latency. A probe timed on our event
loop includes every callback queued before its answer on both members (50-140 ms p99 on
a loaded cluster against etcd's 1-6 ms), and a thread of the member must take the GIL
(23 ms p99 on a loaded box). So each member starts one small probe process
(probeproc.py) that times its probes to every peer and answers its peers' probes:

* prober side: the peer link's task (peer.py) asks the process for a probe every
  interval; the process sends one byte over an upgraded connection (GET /raft/probing
  with `Upgrade: tcp`, answered 101) and times the answer with its own clock;
* answering side: the receiver upgrades a peer's probe connection and passes the socket
  to the process (SCM_RIGHTS), which answers each byte at once; it answers only while
  the member's loop keeps turning (an "alive" packet every 250 ms), so a stopped or
  wedged member stops answering probes, as a stopped etcd does.

Over TLS a connection cannot leave asyncio's TLS layer: https links keep the HTTP GET
probe on the loop. If the process cannot start or dies, probes fall back to it as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.transport import wire

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.transport.stats import PeerFault

log = logging.getLogger(__name__)

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probeproc.py")
ALIVE_INTERVAL = 0.25  # the process answers probes while it hears from us this often


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    ok: bool
    rtt: float = 0.0
    why: str = ""
    timed_out: bool = False
    unsupported: bool = False  # the peer does not upgrade probe connections


class ProbeHelper:
    """The member's end of its probe process: start, ask for probes, pass connections."""

    def __init__(self) -> None:
        self._ctl: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._waiting: dict[int, asyncio.Future[ProbeOutcome]] = {}
        self._alive: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_once = False
        # Deferred (`defer`): the process starts later; peers' upgraded probes that arrive
        # meanwhile wait here to be answered by it (`hold`), not plainly.
        self._deferred = False
        self._held: list[Callable[[bool], None]] = []

    @property
    def running(self) -> bool:
        return self._ctl is not None

    @property
    def pending(self) -> bool:
        """Deferred and not started yet: a probe connection can wait for the process."""
        return self._deferred and not self._started_once

    def defer(self) -> None:
        """Start the process only when `start` is next called (a member's start: its
        ~40 ms of CPU waits until the member's peers are connected)."""
        if not self._started_once:
            self._deferred = True

    def hold(self, answer: Callable[[bool], None]) -> None:
        """Call `answer(True)` once the process runs (False if it cannot start)."""
        self._held.append(answer)

    def start(self) -> None:
        """Start the process (on the running loop); on failure probes stay on the loop.

        Idempotent while it runs; after a stop or a loss it is not restarted.
        """
        if self._ctl is not None or self._started_once:
            return
        try:
            self._start()
        finally:
            self._deferred = False
            held, self._held = self._held, []
            for answer in held:
                with contextlib.suppress(Exception):
                    answer(self.running)

    def _start(self) -> None:
        self._started_once = True  # one start per transport: a lost process stays lost
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", SCRIPT, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            ours.close()
            log.warning("probe process did not start; probing on the loop error=%r", str(exc))
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._ctl = ours
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(ours.fileno(), self._on_readable)
        self._send_alive()

    def _send_alive(self) -> None:
        self._send({"alive": 1})
        if self._loop is not None and self._ctl is not None:
            self._alive = self._loop.call_later(ALIVE_INTERVAL, self._send_alive)

    def _send(self, msg: dict[str, Any], fds: list[int] | None = None) -> bool:
        ctl = self._ctl
        if ctl is None:
            return False
        try:
            if fds:
                socket.send_fds(ctl, [json.dumps(msg).encode()], fds)
            else:
                ctl.send(json.dumps(msg).encode())
        except BlockingIOError:
            return False  # the process is behind: this packet is lost, the probe fails
        except OSError:
            self._lost("control socket failed")
            return False
        return True

    def _on_readable(self) -> None:
        ctl = self._ctl
        while ctl is not None:
            try:
                data = ctl.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost("probe process exited")
                return
            with contextlib.suppress(ValueError, KeyError, TypeError):
                msg = json.loads(data)
                fut = self._waiting.pop(int(msg["probe"], 16), None)
                if fut is not None and not fut.done():
                    fut.set_result(
                        ProbeOutcome(
                            bool(msg["ok"]),
                            float(msg.get("seconds", 0.0)),
                            str(msg.get("why", "")),
                            bool(msg.get("timed_out", False)),
                            bool(msg.get("unsupported", False)),
                        )
                    )

    def _lost(self, why: str) -> None:
        if self._ctl is None:
            return
        log.warning("probe process lost; probing on the loop reason=%r", why)
        self.close()

    async def probe(
        self, peer_id: int, url: str, headers: dict[str, str], limit: float, delay: float
    ) -> ProbeOutcome | None:
        """One probe of `peer_id` timed by the process; None if the process is gone."""
        parts = urllib.parse.urlsplit(url)
        lines = [f"GET {wire.PROBING_PATH} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in wire.upgrade_headers(headers).items()]
        request = "\r\n".join(lines) + "\r\n\r\n"
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ProbeOutcome] = loop.create_future()
        self._waiting[peer_id] = fut  # one probe per peer at a time (its link's task)
        msg = {
            "probe": wire.id_hex(peer_id),
            "request": request,
            "addr": [parts.hostname or "127.0.0.1", parts.port or 80],
            "timeout": limit,
            "delay": delay,
        }
        if not self._send(msg):
            self._waiting.pop(peer_id, None)
            return None if self._ctl is None else ProbeOutcome(False, why="probe process busy")
        try:
            async with asyncio.timeout(limit + delay + 1.0):
                return await fut
        except TimeoutError:
            return ProbeOutcome(False, why="TimeoutError: no probe answer", timed_out=True)
        finally:
            if self._waiting.get(peer_id) is fut:
                del self._waiting[peer_id]

    def echo(self, peer_id: int, conn: Any) -> bool:
        """Pass an upgraded probe connection from `peer_id` to the process to answer."""
        return self._send({"echo": wire.id_hex(peer_id)}, [conn.fileno()])

    def set_fault(self, peer_id: int, fault: PeerFault) -> None:
        """The lab fault toward `peer_id` applies to our answers to its probes too."""
        self._send(
            {"fault": wire.id_hex(peer_id), "delay": fault.delay_seconds, "drop": fault.drop}
        )

    def close(self) -> None:
        """Stop the process (it exits when its control socket closes)."""
        self._deferred = False
        held, self._held = self._held, []
        for answer in held:
            with contextlib.suppress(Exception):
                answer(False)
        ctl, self._ctl = self._ctl, None
        if self._alive is not None:
            self._alive.cancel()
            self._alive = None
        if ctl is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(ctl.fileno())
            ctl.close()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_result(ProbeOutcome(False, why="probe process stopped"))
        self._waiting.clear()
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2.0)


def plain_socket(transport: object) -> Any:
    """A plain (non-TLS) asyncio transport's socket (has fileno()), or None (TLS, none)."""
    get = getattr(transport, "get_extra_info", None)
    if get is None or get("sslcontext") is not None:
        return None
    sock = get("socket")
    return sock if sock is not None and hasattr(sock, "fileno") else None
