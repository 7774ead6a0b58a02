"""A member of a three-member cluster whose peers never answer, for in-process server tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.config import MemberConfig

# Unroutable peers: the member under test campaigns and leads only through what the
# test delivers to it.
PEERS: dict[str, tuple[str, ...]] = {
    "m1": ("http://127.0.0.1:9",),
    "m2": ("http://127.0.0.1:10",),
    "m3": ("http://127.0.0.1:11",),
}


def fast_m1(tmp_path: Path, **overrides: Any) -> MemberConfig:
    """m1 with 10 ms heartbeats and a 100 ms election timeout (tests' speed)."""
    return MemberConfig(
        name="m1",
        data_dir=str(tmp_path / "m1"),
        initial_cluster=PEERS,
        initial_advertise_peer_urls=PEERS["m1"],
        heartbeat_interval_ms=10,
        election_timeout_ms=100,
        **overrides,
    )
