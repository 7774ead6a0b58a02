"""free_ports: distinct, bindable ports, outside the ephemeral range when there is room."""

from __future__ import annotations

import socket

import pytest

from lab import procs


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = procs._ephemeral_range()
    ports = procs.free_ports(8)
    assert len(set(ports)) == 8
    assert all(_bindable(p) for p in ports)
    if low - 1024 >= 200:  # room below the range on this machine
        assert all(not low <= p <= high for p in ports)


@pytest.mark.parametrize("port_range", [(1024, 65535), (1025, 65534), (61000, 61000)])
def test_a_range_leaving_little_room_still_gives_ports(
    monkeypatch: pytest.MonkeyPatch, port_range: tuple[int, int]
) -> None:
    """A machine handing out 1024-65535 to connect() once made every cluster fixture fail."""
    monkeypatch.setattr(procs, "_ephemeral_range", lambda: port_range)
    ports = procs.free_ports(12)
    assert len(set(ports)) == 12
    assert all(_bindable(p) for p in ports)
