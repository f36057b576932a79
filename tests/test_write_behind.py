"""The background writer behind the stream: coalesces wakes, keeps a pause between flushes,
retries a failed flush."""

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
