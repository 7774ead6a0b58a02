"""The probe process: times and answers a member's RTT probes outside its interpreter.

Run as a script by prober.py (`python probeproc.py CONTROL_FD`), stdlib only, so it starts
in tens of milliseconds and shares nothing with the member but a control socket.

Why a process: etcd times its probes in a goroutine of their own, so a busy apply never
shows up as network latency. A thread of the member does not achieve that: it must take
the member's GIL, and on a loaded machine the GIL holder is often preempted by the
kernel, so the answer waits for a whole time slice (measured: p99 23 ms for a thread of
a busy process, 2-4 ms for a separate idle process, on the same box at the same time).

Control packets (SOCK_SEQPACKET, one JSON object each), member -> here:
  {"probe": PEER, "request": HTTP_UPGRADE, "addr": [HOST, PORT], "timeout": S, "delay": S}
  {"echo": PEER}  with the upgraded connection's descriptor attached (SCM_RIGHTS)
  {"fault": PEER, "delay": S, "drop": BOOL}   the member's lab fault toward PEER
  {"alive": 1}   the member's loop turned; probes are answered only while it does
here -> member:
  {"probe": PEER, "ok": BOOL, "seconds": S, "why": TEXT, "timed_out": BOOL}
The process ends when the control socket closes (the member stopped or died).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from typing import Any

PING = b"?"
PONG = b"!"
REFUSED = b"x"  # the answering member's lab drop fault: a failed probe, not a timeout
MAX_HEADER_BYTES = 16 * 1024
# A member whose loop has not turned for this long answers no probe: it is stopped
# (SIGSTOP) or wedged, and its peers must see that, as they would with etcd.
ALIVE_WINDOW_SECONDS = 1.5
ECHO_IDLE_SECONDS = 60.0  # an echo connection silent this long is closed


class ProbeProcess:
    """State shared by the control reader, the prober threads and the echo threads."""

    def __init__(self, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.send_lock = threading.Lock()
        self.faults: dict[str, tuple[float, bool]] = {}
        self.alive_at = time.monotonic()
        self.links: dict[str, _Link] = {}

    def report(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        with self.send_lock, contextlib.suppress(OSError):
            self.ctl.send(data)

    def answering(self) -> bool:
        return time.monotonic() - self.alive_at < ALIVE_WINDOW_SECONDS

    def run(self) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.ctl, 65536, 4)
            except OSError:
                return
            if not data:
                return
            try:
                msg = json.loads(data)
            except ValueError:
                for fd in fds:
                    socket.socket(fileno=fd).close()
                continue
            self.handle(msg, fds)

    def handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        if "alive" in msg:
            self.alive_at = time.monotonic()
        elif "fault" in msg:
            self.faults[msg["fault"]] = (float(msg["delay"]), bool(msg["drop"]))
        elif "echo" in msg:
            for fd in fds:
                peer = str(msg["echo"])
                sock = socket.socket(fileno=fd)
                threading.Thread(target=self.echo, args=(sock, peer), daemon=True).start()
        elif "probe" in msg:
            peer = str(msg["probe"])
            link = self.links.get(peer)
            if link is None:
                link = self.links[peer] = _Link(self, peer)
            link.submit(msg)

    def echo(self, sock: socket.socket, peer: str) -> None:
        """Answer each probe byte from `peer` at once (or as the lab fault says)."""
        with sock:
            try:
                sock.setblocking(True)
                sock.settimeout(ECHO_IDLE_SECONDS)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    data = sock.recv(64)
                    if not data:
                        return
                    if not self.answering():
                        continue  # stopped member: no answer, the prober times out
                    delay, drop = self.faults.get(peer, (0.0, False))
                    if drop:
                        sock.sendall(REFUSED * len(data))
                        continue
                    if delay > 0.0:
                        time.sleep(delay)
                    sock.sendall(PONG * len(data))
            except OSError:
                return


class _Link:
    """One peer's probe connection, driven by a thread of its own, one probe at a time."""

    def __init__(self, proc: ProbeProcess, peer: str) -> None:
        self.proc = proc
        self.peer = peer
        self.sock: socket.socket | None = None
        self.pending: dict[str, Any] | None = None
        self.cond = threading.Condition()
        threading.Thread(target=self.loop, daemon=True).start()

    def submit(self, msg: dict[str, Any]) -> None:
        with self.cond:
            self.pending = msg
            self.cond.notify()

    def loop(self) -> None:
        while True:
            with self.cond:
                while self.pending is None:
                    self.cond.wait()
                msg, self.pending = self.pending, None
            result = self.probe(msg)
            self.proc.report({"probe": self.peer, **result})

    def probe(self, msg: dict[str, Any]) -> dict[str, Any]:
        timeout = float(msg["timeout"])
        try:
            sock = self.sock or self.dial(msg, timeout)
            sock.settimeout(timeout)
            started = time.monotonic()
            delay = float(msg.get("delay", 0.0))
            if delay > 0.0:
                time.sleep(delay)  # a lab delay on our link is part of the round trip
            sock.sendall(PING)
            answer = sock.recv(1)
            seconds = time.monotonic() - started
        except TimeoutError:
            self.close()
            return {"ok": False, "why": "TimeoutError: no probe answer", "timed_out": True}
        except _Unsupported as exc:
            return {"ok": False, "why": f"unsupported: {exc}", "unsupported": True}
        except OSError as exc:
            self.close()
            return {"ok": False, "why": f"{type(exc).__name__}: {exc}"}
        if answer == PONG:
            return {"ok": True, "seconds": seconds}
        if answer == REFUSED:
            return {"ok": False, "why": "answer dropped by fault injection"}
        self.close()
        return {"ok": False, "why": "probe connection closed by peer"}

    def dial(self, msg: dict[str, Any], timeout: float) -> socket.socket:
        host, port = msg["addr"]
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(msg["request"].encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk or len(head) > MAX_HEADER_BYTES:
                    raise ConnectionError("connection closed before the probe upgrade")
                head += chunk
            status = head.split(b"\r\n", 1)[0].split()
            if len(status) < 2 or status[1] != b"101":
                raise _Unsupported(b" ".join(status[1:]).decode(errors="replace"))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class _Unsupported(Exception):
    """The peer answered the probe upgrade with something other than 101."""


def main(argv: list[str]) -> int:
    ctl = socket.socket(fileno=int(argv[1]))
    ProbeProcess(ctl).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
