"""Liveness: is the worker's consumer making progress? A consumer that has input waiting (lag)
but has written no batch for ``stall_after_s`` is stalled; ``/health`` then answers 503 and
``salesguard_consumer_stalled`` is 1, so that an orchestrator (or an alert) restarts it.

A quiet stream is not a stall: with no lag the worker counts as up to date.

>>> clock = iter([0.0, 10.0, 100.0, 101.0]).__next__
>>> liveness = Liveness(stall_after_s=60.0, clock=clock)   # starts at t=0
>>> liveness.check(lag=5).stalled                          # t=10: input waiting, 10 s idle
False
>>> liveness.check(lag=7).stalled                          # t=100: 100 s without a batch
True
>>> liveness.check(lag=0).stalled                          # t=101: nothing left to read
False
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from monitoring import metrics


@dataclass(frozen=True)
class Health:
    """The consumer's health as of one check."""

    stalled: bool
    #: Input messages on this worker's partitions not read yet (None: it has no input partitions).
    lag: int | None
    seconds_since_progress: float

    def as_dict(self) -> dict[str, object]:
        """The JSON body of ``/health``."""
        return {"status": "stalled" if self.stalled else "ok", "lag": self.lag,
                "seconds_since_progress": round(self.seconds_since_progress, 1)}


class Liveness:
    """Tracks the consumer's progress; :meth:`check` tells whether it is stalled and updates
    the metrics."""

    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.last_progress = clock()

    def progressed(self) -> None:
        """A batch was written."""
        self.last_progress = self.clock()

    def check(self, lag: int | None) -> Health:
        """Health given the current input ``lag``."""
        now = self.clock()
        if lag == 0:
            self.last_progress = now
        idle = now - self.last_progress
        health = Health(stalled=bool(lag) and idle > self.stall_after_s, lag=lag, seconds_since_progress=idle)
        metrics.CONSUMER_STALLED.set(int(health.stalled))
        metrics.SECONDS_SINCE_PROGRESS.set(idle)
        # no input partitions (None): none of its own to read; their owners report their lag
        # (a value kept from before a rebalance would count those partitions twice)
        metrics.INPUT_LAG.set(lag or 0)
        return health
