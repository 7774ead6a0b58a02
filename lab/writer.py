"""A light background write load that remembers every write and how it ended.

The scenarios need more than a throughput figure: quorum-loss must prove that every
*acknowledged* write survived, partitions must show which side still writes, the
slow-network run compares latency before and after. So each write is kept as a
`WriteRecord` (when, how long, which endpoint, ok or which error), and `window()`
summarises any time slice. Writes run on an asyncio loop in a thread of their own, so
the scenario code stays synchronous and can kill members while writes are in flight.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from lab.loop_thread import LoopThread

if TYPE_CHECKING:
    from ssl import SSLContext

log = logging.getLogger(__name__)

# Failures the lab client saw on its own (no answer from the cluster).
CONNECTION_ERRORS = ("connection refused", "timeout", "connection lost")


@dataclass(frozen=True, slots=True)
class WriteRecord:
    sent: float  # time.time() at send
    latency: float  # seconds until the answer (or the failure)
    endpoint: str
    key: str
    value: str
    ok: bool
    error: str = ""  # etcd's message, or a connection failure's kind


@dataclass
class Window:
    """Writes sent within [start, end): counts, rate, latency, errors by message."""

    start: float
    end: float
    ok: int = 0
    failed: int = 0
    p50: float = 0.0
    p99: float = 0.0
    mean: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(1e-9, self.end - self.start)

    @property
    def rate(self) -> float:
        """Acknowledged writes per second."""
        return self.ok / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "ok": self.ok,
            "failed": self.failed,
            "writes_per_second": round(self.rate, 1),
            "latency_p50_ms": round(self.p50 * 1000, 1),
            "latency_p99_ms": round(self.p99 * 1000, 1),
            "latency_mean_ms": round(self.mean * 1000, 1),
            "errors": self.errors,
        }


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Writer(LoopThread):
    """`clients` closed-loop writers (optionally capped at `rate` writes/s in total)."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        prefix: str = "lab",
        clients: int = 4,
        rate: float = 0.0,
        timeout: float = 3.0,
        value_size: int = 16,
        ssl: SSLContext | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        super().__init__()
        self.thread_name = f"writer-{prefix}"
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.clients = clients
        self.rate = rate
        self.timeout = timeout
        self.value_size = value_size
        self._ssl: SSLContext | bool = ssl or True  # https endpoints: CA + client cert
        self._records: list[WriteRecord] = []
        self._lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------------
    def join_timeout(self) -> float:
        return self.timeout + 10  # a put in flight may take its whole timeout

    def set_endpoints(self, endpoints: list[str]) -> None:
        """Point new writes at other members (e.g. one side of a partition)."""
        with self._lock:
            self.endpoints = list(endpoints)

    async def serve(self) -> None:
        self.serving()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.clients * 2, ssl=self._ssl)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            async with asyncio.TaskGroup() as group:
                for i in range(self.clients):
                    group.create_task(self._client(session, i))

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        interval = self.clients / self.rate if self.rate > 0 else 0.0
        seq = 0
        turn = index
        next_at = time.monotonic()
        pad = "x" * max(0, self.value_size - 12)
        while not self.stopping.is_set():
            with self._lock:
                endpoints = self.endpoints
            endpoint = endpoints[turn % len(endpoints)]
            key = f"{self.prefix}/{index}/{seq:08d}"
            value = f"v{seq:08d}{pad}"
            record = await self._put(session, endpoint, key, value)
            with self._lock:
                self._records.append(record)
            seq += 1
            if not record.ok and record.error in (
                "connection refused",
                "timeout",
                "connection lost",
            ):
                turn += 1  # that member is gone or stuck: try the next one
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay < -1.0:  # fell far behind (a stall): do not burst afterwards
                    next_at = time.monotonic()
            else:
                delay = 0.0 if record.ok else 0.05  # failing fast: do not spin
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except TimeoutError:
                    pass

    async def _put(
        self, session: aiohttp.ClientSession, endpoint: str, key: str, value: str
    ) -> WriteRecord:
        body = json.dumps({"key": _b64(key), "value": _b64(value)})
        sent = time.time()
        t0 = time.perf_counter()
        error = ""
        try:
            async with session.post(endpoint + "/v3/kv/put", data=body) as resp:
                text = await resp.text()
            data = json.loads(text) if text.strip() else {}
            if resp.status != 200 or (isinstance(data, dict) and "error" in data):
                message = (
                    data.get("message") or data.get("error") if isinstance(data, dict) else None
                )
                error = str(message or f"HTTP {resp.status}")
        except aiohttp.ClientConnectorError:
            error = "connection refused"
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = (
                "connection lost"
                if isinstance(exc, aiohttp.ServerDisconnectedError)
                else type(exc).__name__
            )
        latency = time.perf_counter() - t0
        return WriteRecord(sent, latency, endpoint, key, value, not error, error)

    # ---- results -------------------------------------------------------------------------
    def records(self) -> list[WriteRecord]:
        with self._lock:
            return list(self._records)

    def acknowledged(self) -> dict[str, str]:
        """key -> value of every write the cluster acknowledged."""
        return {r.key: r.value for r in self.records() if r.ok}

    def window(self, start: float, end: float | None = None) -> Window:
        end = time.time() if end is None else end
        rows = [r for r in self.records() if start <= r.sent < end]
        latencies = sorted(r.latency for r in rows if r.ok)
        errors = Counter(r.error for r in rows if not r.ok)
        return Window(
            start=start,
            end=end,
            ok=len(latencies),
            failed=sum(errors.values()),
            p50=_quantile(latencies, 0.5),
            p99=_quantile(latencies, 0.99),
            mean=sum(latencies) / len(latencies) if latencies else 0.0,
            errors=dict(errors.most_common()),
        )

    def last_ok(self) -> float | None:
        oks = [r.sent for r in self.records() if r.ok]
        return max(oks) if oks else None
