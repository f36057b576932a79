"""Batches' state changes written to the changelog in batch order, queued batches together.

A batch's state may go to the changelog only after the broker has its outputs and after the
previous batch's state (see ``SalesguardApp.begin``). Written a batch at a time, that is one or
two broker round trips per batch (the records, then the end markers); on a steady load of small
batches the chain of writes fell behind and held up the consumer. The writer here sends, once
the oldest waiting batch's outputs are acknowledged, the state records of it and of every batch
queued behind it whose outputs are acknowledged too in one request — a customer changed by
several of them once, with its newest state — then one end marker per partition.

>>> async def demo():
...     sent = []
...     async def send(records):
...         sent.append([r.key for r in records])
...     writer, loop = StateWriter(send), asyncio.get_running_loop()
...     acked = [loop.create_future() for _ in range(3)]
...     state = lambda key: [[Record("changelog", key, b"{}", 0)]]
...     writes = [writer.write(acked[i], state(key)) for i, key in enumerate([b"A", b"B", b"A"])]
...     for future in acked:
...         future.set_result(None)
...     await asyncio.gather(*writes)
...     return sent
>>> asyncio.run(demo())
[[b'A', b'B']]
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streams.outbox import Record


@dataclass
class PendingWrite:
    """One batch's state waiting to be written."""

    #: Completes once the broker has the batch's outputs.
    outputs: asyncio.Future[object]
    records: list[Record]
    markers: list[Record]
    #: Completes once the batch's state is written (fails if its outputs or a write failed).
    done: asyncio.Future[None]


class StateWriter:
    """Writes batches' changelog records in batch order (see the module docstring). After a
    failure every batch then queued or written later fails too: the worker stops and the
    batches are delivered again."""

    def __init__(self, send: Callable[[Sequence[Record]], Awaitable[None]]) -> None:
        self._send = send
        self._queue: deque[PendingWrite] = deque()
        self._task: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None

    def write(self, outputs: asyncio.Future[object], requests: list[list[Record]]) -> asyncio.Future[None]:
        """Queue a batch's state (``CustomerStates.stage``'s requests: the records, then the end
        markers if any) to be written once ``outputs`` completes; the future completes when it is."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._failure is not None:
            done.set_exception(self._failure)
            return done
        records, markers = (requests + [[], []])[:2]
        self._queue.append(PendingWrite(outputs, records, markers, done))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return done

    async def _run(self) -> None:
        queue = self._queue
        while queue:
            group = [queue[0]]
            try:
                await group[0].outputs
                queue.popleft()
                while queue and _succeeded(queue[0].outputs):
                    group.append(queue.popleft())
                records = {(r.key, r.partition): r for write in group for r in write.records}
                markers = {r.partition: r for write in group for r in write.markers}
                if records:
                    await self._send(list(records.values()))
                if markers:
                    await self._send(list(markers.values()))
            except Exception as exc:
                self._fail(group, exc)
                return
            for write in group:
                write.done.set_result(None)

    def _fail(self, group: list[PendingWrite], exc: BaseException) -> None:
        self._failure = exc
        failed = {id(write): write for write in [*group, *self._queue]}
        self._queue.clear()
        for write in failed.values():
            if write.outputs.done() and not write.outputs.cancelled():
                write.outputs.exception()  # retrieved: it is the batch's failure, or none
            if not write.done.done():
                write.done.set_exception(exc)


def _succeeded(future: asyncio.Future[object]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
