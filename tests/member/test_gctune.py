"""The member's collector settings: start-up heap frozen, thresholds 10,000 / 5 / 100."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from node.member import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_tune_after_start_freezes_the_heap_and_raises_the_young_threshold() -> None:
    kept = [[i] for i in range(1000)]  # live start-up objects
    gctune.tune_after_start()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (gctune.YOUNG_THRESHOLD, *gctune.OLDER_THRESHOLDS)
    gctune.tune_after_start()  # again: still the same settings
    assert gc.get_threshold() == (gctune.YOUNG_THRESHOLD, *gctune.OLDER_THRESHOLDS)
