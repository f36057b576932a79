"""Writes that follow the stream instead of holding it up: Redis (the mirror, the audit trail)
is written by a background task while the next batch is processed.

``wake(items)`` after staging something; the task flushes, one flush at a time and at most one
every ``interval_s`` (what several batches staged goes out together: a customer's snapshot once,
not once per batch), and retries a failed flush every ``retry_s`` seconds (what was staged
meanwhile goes out with it). While Redis takes writes, the stream waits (:meth:`caught_up`)
once more than ``limit`` items are staged: in a backlog the stream outruns the writer, and what
is staged, and each flush of it, would grow without bound. Then the next flush does not wait
for the rest of the interval: the stream would idle through it. During an outage nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class WriteBehind:
    """Runs ``flush()`` (True when it succeeded) whenever woken, in the background."""

    def __init__(self, flush: Callable[[], Awaitable[bool]], interval_s: float = 0.1, retry_s: float = 1.0,
                 limit: int | None = None) -> None:
        self.flush = flush
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.limit = limit
        #: Items staged that no flush has taken yet.
        self.staged = 0
        #: Whether the last flush succeeded.
        self.healthy = True
        self._wanted = asyncio.Event()
        self._flushed = asyncio.Event()
        #: Set when more than ``limit`` items are staged: ends the pause between flushes.
        self._full = asyncio.Event()

    def wake(self, items: int = 0) -> None:
        """Ask for a flush of ``items`` more staged items (cheap; many wakes before the task
        runs make one flush)."""
        self.staged += items
        self._wanted.set()
        if self._over_limit():
            self._full.set()

    async def caught_up(self) -> None:
        """Return once at most ``limit`` items are staged, or at once while flushes fail."""
        while self._over_limit() and self.healthy:
            await self._flushed.wait()

    def _over_limit(self) -> bool:
        return self.limit is not None and self.staged > self.limit

    async def run(self) -> None:
        """Flush whenever woken, forever (cancel to stop)."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            self.staged = 0  # this flush takes everything staged so far
            self.healthy = await self.flush()
            self._flushed.set()  # wakes every waiter; the next ones wait for the next flush
            self._flushed.clear()
            if self.healthy:
                await self._pause()
            else:
                await asyncio.sleep(self.retry_s)
                self._wanted.set()

    async def _pause(self) -> None:
        """Wait ``interval_s`` after a flush, or only until more than ``limit`` items are staged."""
        self._full.clear()
        if not self._over_limit():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.interval_s)
