"""The loop watchdog (RAFTMON_STALL_WATCHDOG_MS): a loop blocked on purpose is logged with
the stack that held it, the collections inside it, and where its wall time went."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from node.member import watchdog


def test_threshold_comes_from_the_environment_and_is_off_by_default() -> None:
    assert watchdog.threshold_from_env({}) == 0.0
    assert watchdog.threshold_from_env({watchdog.ENV_VAR: "80"}) == pytest.approx(0.08)
    assert watchdog.threshold_from_env({watchdog.ENV_VAR: "soon"}) == 0.0


async def test_off_by_default_starts_nothing() -> None:
    assert watchdog.start_from_env({}) is None


def _hold_the_loop_in_a_named_function(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # busy, as a long apply would be
        sum(range(1000))


async def _until_stalls(dog: watchdog.LoopWatchdog) -> None:
    """Let the loop turn until the watchdog reported a stall (bounded: 10 s)."""
    for _ in range(1000):
        if dog.stalls:
            return
        await asyncio.sleep(0.01)


async def test_a_blocked_loop_is_logged_with_its_stack(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=watchdog.__name__)
    dog = watchdog.start_from_env({watchdog.ENV_VAR: "50"})
    assert dog is not None
    try:
        await asyncio.sleep(0.05)
        _hold_the_loop_in_a_named_function(0.3)
        await _until_stalls(dog)
    finally:
        dog.stop()
    assert dog.stalls, "no stall seen"
    stall = max(dog.stalls, key=lambda s: s.seconds)
    assert stall.seconds >= 0.05
    assert any("_hold_the_loop_in_a_named_function" in stack for _, stack in stall.stacks)
    assert stall.blocked_seconds >= 0.0
    logged = [r for r in caplog.records if r.getMessage() == "event loop stalled"]
    assert logged
    assert "stacks" in logged[-1].fields  # type: ignore[attr-defined]


async def test_a_collection_inside_a_stall_is_named() -> None:
    dog = watchdog.start_from_env({watchdog.ENV_VAR: "50"})
    assert dog is not None
    try:
        await asyncio.sleep(0.05)
        gc.collect()
        _hold_the_loop_in_a_named_function(0.2)
        await _until_stalls(dog)
    finally:
        dog.stop()
    stall = max(dog.stalls, key=lambda s: s.seconds)
    assert any(gen == 2 for gen, _, _, _ in stall.gc_collections)
    assert dog._on_gc not in gc.callbacks  # stopped: the callback is gone
