"""How many requests/s one load worker can generate (`make bench`).

The endpoint is the trivial fake (`tests.loadgen.fake_etcd`: a fixed put answer) in a
process of its own, so the figure is the generator's ceiling, not a server's: a
cluster slower than this is measured faithfully, a faster one needs `--workers`.
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


@pytest.fixture(scope="module")
def trivial_endpoint() -> Iterator[str]:
    port = free_port()
    proc = spawn([sys.executable, "-m", "tests.loadgen.fake_etcd", str(port)])
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
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("workers", "clients", "conns"),
    [(1, 16, 4), (1, 64, 8), (1, 256, 16), (2, 64, 8)],
)
def test_bench_generator_requests_per_second(
    trivial_endpoint: str, workers: int, clients: int, conns: int
) -> None:
    code, report = run_load(
        [
            f"--endpoints={trivial_endpoint}",
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
        f"\nloadgen workers={workers} clients={clients} conns={conns}: "
        f"{report['requests_per_second']:.0f} req/s "
        f"(p50 {p['50'] * 1e3:.2f} ms, p99 {p['99'] * 1e3:.2f} ms, {TOTAL} puts)"
    )
