import gc
import weakref

import pytest

from streams.heap import YOUNG_LIMIT, HeapKeeper


class Node:
    """An object that can be made part of a reference cycle."""


@pytest.fixture()
def unfrozen():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def collections_while(allocate) -> int:
    """How many collections ran while ``allocate()`` ran."""
    runs = []

    def count(phase, info):
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(count)
    try:
        allocate()
    finally:
        gc.callbacks.remove(count)
    return len(runs)


def test_between_two_ticks_the_collector_runs_only_past_young_limit_new_objects(unfrozen):
    gc.set_threshold(50_000, 20, 10)  # as every salesguard process starts
    kept = []
    assert collections_while(lambda: kept.extend([i] for i in range(150_000))) >= 2
    HeapKeeper().tick()
    more = []
    assert collections_while(lambda: more.extend([i] for i in range(150_000))) == 0
    assert collections_while(lambda: more.extend([i] for i in range(YOUNG_LIMIT))) >= 1


def test_frozen_cycles_are_skipped_by_collections_and_freed_by_the_periodic_full_collection(unfrozen):
    now = [0.0]
    keeper = HeapKeeper(full_collect_s=60.0, clock=lambda: now[0])
    cycle = Node()
    cycle.me = cycle
    alive = weakref.ref(cycle)
    keeper.tick()
    assert gc.get_freeze_count() > 0
    del cycle
    gc.collect()
    assert alive() is not None  # frozen: no collection looks at it
    now[0] += 30.0
    keeper.tick()
    gc.collect()
    assert alive() is not None  # not yet time for the full collection
    now[0] += 30.0
    keeper.tick()
    assert alive() is None  # unfrozen and collected
    assert gc.get_freeze_count() > 0  # and the heap frozen again
