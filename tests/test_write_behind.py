"""The background writer behind the stream: coalesces wakes, keeps a pause between flushes
(cut short once the stream waits for it), retries a failed flush."""

import asyncio

from streams.write_behind import WriteBehind


async def test_wakes_during_a_flush_and_its_pause_make_one_more_flush_and_a_failed_flush_is_retried():
    calls: list[float] = []
    outcomes = iter([True, False, True])

    async def flush() -> bool:
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.01)
        return next(outcomes, True)

    writer = WriteBehind(flush, interval_s=0.05, retry_s=0.05)
    task = asyncio.create_task(writer.run())
    try:
        writer.wake()
        await asyncio.sleep(0.005)  # first flush running
        for _ in range(5):
            writer.wake()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
    # 1st flush; the 5 wakes -> one 2nd flush (fails); its retry -> 3rd; nothing else was asked
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.05


async def test_the_stream_waits_while_more_than_limit_items_are_staged_but_not_while_flushes_fail():
    outcomes = iter([True, False])
    gate = asyncio.Event()

    async def flush() -> bool:
        await gate.wait()
        return next(outcomes, True)

    writer = WriteBehind(flush, interval_s=0.01, retry_s=10.0, limit=100)
    task = asyncio.create_task(writer.run())
    try:
        writer.wake(60)
        await asyncio.wait_for(writer.caught_up(), 0.1)  # within the limit
        await asyncio.sleep(0)  # the first flush takes the 60 and waits at the gate
        writer.wake(101)
        waiting = asyncio.create_task(writer.caught_up())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # 101 staged: waits for the flush after the running one
        gate.set()  # the first flush succeeds; the second takes the 101 and fails
        await asyncio.wait_for(waiting, 0.5)
        writer.wake(500)
        await asyncio.wait_for(writer.caught_up(), 0.1)  # Redis failing: the stream goes on
    finally:
        task.cancel()


async def test_the_pause_between_flushes_ends_once_the_stream_waits_for_the_writer():
    flushes: list[float] = []

    async def flush() -> bool:
        flushes.append(asyncio.get_running_loop().time())
        return True

    writer = WriteBehind(flush, interval_s=10.0, limit=100)
    task = asyncio.create_task(writer.run())
    try:
        writer.wake(60)
        await asyncio.sleep(0.01)  # the 60 flushed at once; now pausing for 10 s
        writer.wake(50)
        await asyncio.sleep(0.05)
        assert len(flushes) == 1  # 50 staged, within the limit: the pause goes on
        writer.wake(60)  # 110 staged: the stream waits, so the writer stops pausing
        await asyncio.wait_for(writer.caught_up(), 0.5)
        assert len(flushes) == 2 and flushes[1] - flushes[0] < 1.0
    finally:
        task.cancel()
