"""How many requests/s one load worker can generate (`make bench`), over HTTP and gRPC.

The endpoint is a trivial fake (`tests.loadgen.fake_etcd` over HTTP,
`tests.loadgen.fake_etcd_grpc` over gRPC: a fixed put answer) in a process of its own,
so the figure is the generator's ceiling, not a server's: a cluster slower than this
is measured faithfully, a faster one needs `--workers`. Each line also prints the
generator's own CPU per request. NB: the gRPC fake is grpcio's asyncio server, whose
per-call Python cost (~3,000-4,000 calls/s on one of these cores) is the limit of its
lines, so they are a floor for the generator's gRPC ceiling, and its CPU per request is
that of a client often waiting (fewer calls share each wake-up than against etcd).
Numbers only: nothing here asserts a timing (2 shared cores are noisy; the fake
server takes one of them).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from lab.children import spawn
from tests.helpers import free_port
from tests.loadgen.conftest import run_load

pytestmark = pytest.mark.bench

TOTAL = 30_000


FAKES = {"http": "tests.loadgen.fake_etcd", "grpc": "tests.loadgen.fake_etcd_grpc"}


@pytest.fixture(scope="module", params=sorted(FAKES))
def trivial_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(protocol, endpoint) of a fake serving that protocol."""
    port = free_port()
    proc = spawn([sys.executable, "-m", FAKES[request.param], str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("fake endpoint did not start")
        yield request.param, f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("workers", "clients", "conns"),
    [(1, 16, 4), (1, 64, 8), (1, 256, 16), (2, 64, 8)],
)
def test_bench_generator_requests_per_second(
    trivial_endpoint: tuple[str, str], workers: int, clients: int, conns: int
) -> None:
    protocol, endpoint = trivial_endpoint
    code, report = run_load(
        [
            f"--protocol={protocol}",
            f"--endpoints={endpoint}",
            f"--workers={workers}",
            f"--clients={clients}",
            f"--conns={conns}",
            "put",
            f"--total={TOTAL}",
            "--key-space-size=1000",
        ]
    )
    assert code == 0
    assert report["succeeded"] == TOTAL
    p = report["latency_seconds"]["percentiles"]
    print(
        f"\nloadgen {protocol} workers={workers} clients={clients} conns={conns}: "
        f"{report['requests_per_second']:.0f} req/s "
        f"(p50 {p['50'] * 1e3:.2f} ms, p99 {p['99'] * 1e3:.2f} ms, {TOTAL} puts, "
        f"generator CPU {report['client_cpu_us_per_request']:.0f} µs/request)"
    )
