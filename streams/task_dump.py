"""What every asyncio task of the worker is waiting on, for the log when the worker stalls.

A stalled worker raises no error: some task waits for something that never comes. The dump
names each task with the chain of coroutines it is suspended in (innermost last), on every
event loop given (Faust's consumer runs its own loop in a thread).

>>> import asyncio
>>> async def waits_forever(event):
...     await event.wait()
>>> async def main():
...     task = asyncio.create_task(waits_forever(asyncio.Event()), name="stuck")
...     await asyncio.sleep(0)
...     dump = describe_tasks([asyncio.get_running_loop()])
...     task.cancel()
...     return dump
>>> print(asyncio.run(main()))  # doctest: +ELLIPSIS
loop ...: 2 tasks
...
  task stuck
    <doctest ...>:2, in waits_forever
    ...locks.py:..., in wait
    waits for <Future pending cb=[Task.task_wakeup()]>
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import CoroutineType, FrameType, GeneratorType
from typing import Any

#: Coroutine frames shown per task (the outermost are dropped beyond it).
MAX_FRAMES = 30


def describe_tasks(loops: Iterable[asyncio.AbstractEventLoop]) -> str:
    """Every pending task of each loop in ``loops`` with where it is suspended."""
    lines: list[str] = []
    for loop in loops:
        tasks = _tasks_of(loop)
        lines.append(f"loop {id(loop):#x}: {len(tasks)} tasks")
        for task in sorted(tasks, key=lambda t: t.get_name()):
            lines.append(f"  task {task.get_name()}")
            lines.extend(f"    {line}" for line in _await_chain(task.get_coro()))
            lines.append(f"    waits for {getattr(task, '_fut_waiter', None)!r:.300}")
    return "\n".join(lines)


def _tasks_of(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[Any]]:
    """The loop's pending tasks (read from another thread: retried if the set changes meanwhile)."""
    for _ in range(10):
        try:
            return {task for task in asyncio.all_tasks(loop) if not task.done()}
        except RuntimeError:  # set changed size during iteration
            continue
    return set()


def _await_chain(awaitable: Any) -> list[str]:
    """``file:line, in function`` for each coroutine from ``awaitable`` down to the innermost."""
    lines: list[str] = []
    while awaitable is not None:
        frame: FrameType | None = None
        if isinstance(awaitable, CoroutineType):
            frame, next_awaitable = awaitable.cr_frame, awaitable.cr_await
        elif isinstance(awaitable, GeneratorType):
            frame, next_awaitable = awaitable.gi_frame, awaitable.gi_yieldfrom
        elif hasattr(awaitable, "ag_frame"):  # async generator's asend/athrow are opaque
            frame, next_awaitable = awaitable.ag_frame, getattr(awaitable, "ag_await", None)
        else:  # a future's iterator: the task's waiter names the future
            break
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno}, in {frame.f_code.co_name}")
        awaitable = next_awaitable
    return lines[-MAX_FRAMES:]
