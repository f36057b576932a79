import gc
import weakref

import pytest

from streams.heap import HeapKeeper


class Node:
    """An object that can be made part of a reference cycle."""


@pytest.fixture()
def unfrozen():
    yield
    gc.unfreeze()


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
