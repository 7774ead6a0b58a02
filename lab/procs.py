"""Child processes the lab owns, free ports, bounded waits and small JSON-over-HTTP helpers.

The harness the lab and the tests share. Nothing sleeps for a fixed time where an event
can be awaited: `wait_until` polls a check with a deadline and says what it was waiting
for when it gives up. Every process is started through `children.spawn` in its own
session, so a Ctrl-C in the terminal reaches only the lab, which then stops its children
in order (`ManagedProcess.stop`), and the kernel kills them if the lab dies first.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeVar

from lab.children import spawn

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence
    from pathlib import Path

log = logging.getLogger(__name__)

T = TypeVar("T")


class Running:
    """`with x:` starts x and always stops it, also when starting fails half-way."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:  # __exit__ does not run when __enter__ raises
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (Linux default: 32768-60999)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(part) for part in f.read().split()[:2])
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _ports_outside_ephemeral_range() -> list[int]:
    """Unprivileged ports no connect() is given: some below the range, all above it."""
    low, high = _ephemeral_range()
    below = range(max(1024, low - 12_000), max(1024, low))
    above = range(min(high + 1, 65536), 65536)
    return [*below, *above]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports that were free a moment ago (held together while chosen).

    Chosen at random outside the kernel's ephemeral range: a port the kernel picks for
    bind(0) is one it may also give to any outgoing connection before our server binds
    it (an etcd member once failed "bind: address already in use" that way); ports
    outside the range are never taken by a connect(). Falls back to bind(0) when the
    range leaves too few ports outside it (a machine may hand out 1024-65535).
    """
    socks: list[socket.socket] = []
    outside = _ports_outside_ephemeral_range()
    candidates = random.sample(outside, k=min(4 * count + 64, len(outside)))
    try:
        for port in candidates:
            if len(socks) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            socks.append(sock)
        while len(socks) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


class WaitTimeout(TimeoutError):
    """A bounded wait ran out; the message says what was awaited (and a log tail)."""


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll `check()` until it returns something truthy; return it. Bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = detail() if detail is not None else ""
            raise WaitTimeout(f"{what}: not within {timeout:g}s" + (f"\n{extra}" if extra else ""))
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def http_get(url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None) -> bytes | None:
    """GET `url`; None when it cannot be reached or answers an error status.

    `context`: CA and client certificate for an https URL (`LocalCluster.client_ssl`).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            body: bytes = resp.read()
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


def http_json(
    url: str,
    body: dict[str, Any] | None = None,
    method: str | None = None,
    timeout: float = 3.0,
    context: ssl.SSLContext | None = None,
) -> Any:
    """POST `body` (or GET) as JSON; the decoded answer, also for HTTP error statuses.

    Raises OSError when the server cannot be reached at all, so callers can tell
    "refused" from "answered with an error".
    """
    data = None if body is None else json.dumps(body).encode()
    verb = method or ("GET" if body is None else "POST")
    req = urllib.request.Request(url, data=data, method=verb)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return json.loads(payload)
        except ValueError:
            return {"error": payload.decode(errors="replace"), "status": err.code}
    except urllib.error.URLError as err:
        raise OSError(str(err.reason)) from err
    return json.loads(payload) if payload.strip() else {}


def hostport(url: str) -> str:
    """`127.0.0.1:2379` from `http://127.0.0.1:2379`."""
    return urllib.parse.urlsplit(url).netloc


@dataclass
class ManagedProcess:
    """One child process with its log file; `stop()` terminates it, then kills it."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = spawn(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if self.env is None else {**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        log.debug("started name=%s pid=%d", self.name, self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Safe to call twice."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.debug("stopped name=%s rc=%s", self.name, proc.returncode)

    def tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


def load_generator(
    name: str, log_path: Path, endpoints: list[str], flags: Sequence[str], put: Sequence[str]
) -> ManagedProcess:
    """`raftmon load ... put` against `endpoints` as a child (not started yet).

    `flags` are the benchmark's global flags, `put` the put subcommand's; progress output
    is off, since the log file is not a terminal.
    """
    argv = [sys.executable, "-m", "loadgen", f"--endpoints={','.join(endpoints)}", *flags]
    return ManagedProcess(name, [*argv, "--no-progress", "put", *put], log_path)
