"""Writes that follow the stream instead of holding it up: Redis (the mirror, the audit trail)
is written by a background task while the next batch is processed.

``wake()`` after staging something; the task flushes, one flush at a time and at most one every
``interval_s`` (what several batches staged goes out together: a customer's snapshot once, not
once per batch), and retries a failed flush every ``retry_s`` seconds (what was staged
meanwhile goes out with it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class WriteBehind:
    """Runs ``flush()`` (True when it succeeded) whenever woken, in the background."""

    def __init__(self, flush: Callable[[], Awaitable[bool]], interval_s: float = 0.1, retry_s: float = 1.0) -> None:
        self.flush = flush
        self.interval_s = interval_s
        self.retry_s = retry_s
        self._wanted = asyncio.Event()

    def wake(self) -> None:
        """Ask for a flush (cheap; many wakes before the task runs make one flush)."""
        self._wanted.set()

    async def run(self) -> None:
        """Flush whenever woken, forever (cancel to stop)."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if await self.flush():
                await asyncio.sleep(self.interval_s)
            else:
                await asyncio.sleep(self.retry_s)
                self._wanted.set()
