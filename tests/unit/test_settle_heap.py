"""settle_heap: start-up's objects leave the collector's walks; cycles are still collected."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway_api.cli import GC_YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_start_up_and_keeps_collecting_cycles() -> None:
    older = gc.get_threshold()[1:]
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *older)

    class Node:
        other: object

    collected_before = sum(stats["collected"] for stats in gc.get_stats())
    for _ in range(3 * GC_YOUNG_THRESHOLD):  # cycles, reachable from nothing
        a, b = Node(), Node()
        a.other, b.other = b, a
    collected_after = sum(stats["collected"] for stats in gc.get_stats())
    assert collected_after > collected_before  # the young generation still ran
