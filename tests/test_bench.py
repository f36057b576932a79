"""The benchmark's own measuring helpers (the benchmark itself runs in tests/integration)."""

import asyncio
import os
import time

from streams.bench import cores_used


def spin(seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


def test_cores_used_measures_the_process_per_slice_while_the_work_runs():
    async def work() -> str:
        await asyncio.to_thread(spin, 1.3)  # one core busy for 1.3 s
        return "done"

    result, cores = asyncio.run(cores_used(os.getpid(), 0.5, work()))
    assert result == "done"
    assert cores is not None and len(cores) == 2  # 0.5 + 0.5 s; the last 0.3 s (under a second) left out
    assert all(0.6 < used < 1.5 for used in cores)


def test_cores_used_without_a_process_only_runs_the_work():
    async def work() -> int:
        return 7

    assert asyncio.run(cores_used(None, 0.5, work())) == (7, None)
