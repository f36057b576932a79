"""Keeping a worker's long-lived heap out of the cyclic garbage collector's way.

A worker holds its customers' states for good, and creates almost no cyclic garbage (the
collector found none in most passes and 125 objects in a full pass of a 300,000-event run);
reference counting frees nearly everything. Yet Python's collector walks the whole heap in
every full pass: with 100,000 customers one pass took 1.8 s, during which nothing was decided.
So, on a timer, whatever has been allocated so far is frozen (``gc.freeze``: moved where
collections do not look); collections then only walk what is newer. Cycles frozen while still
alive that die later are not freed by a collection, so every ``full_collect_s`` everything is
unfrozen and collected once (one long pause then, instead of at the collector's whim).

>>> keeper = HeapKeeper(full_collect_s=1800.0)
>>> keeper.tick()  # freezes what exists
>>> gc.get_freeze_count() > 0
True
>>> gc.unfreeze()
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: How often what was allocated is frozen.
FREEZE_EVERY_S = 5.0
#: How often everything is unfrozen and collected once.
FULL_COLLECT_EVERY_S = 1800.0


class HeapKeeper:
    """Freezes the heap on each :meth:`tick`; unfreezes and collects it all every ``full_collect_s``."""

    def __init__(self, full_collect_s: float = FULL_COLLECT_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.full_collect_s = full_collect_s
        self.clock = clock
        self.last_full_collect = clock()

    def tick(self) -> None:
        """Freeze the heap (after a full collection if one is due)."""
        now = self.clock()
        if now - self.last_full_collect >= self.full_collect_s:
            self.last_full_collect = now
            frozen = gc.get_freeze_count()
            gc.unfreeze()
            started = time.perf_counter()
            found = gc.collect()
            log.info("full garbage collection over %d objects: %d unreachable, %.2f s", frozen, found,
                     time.perf_counter() - started)
        gc.freeze()
