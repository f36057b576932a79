"""The benchmark's own measuring helpers (the benchmark itself runs in tests/integration)."""

import asyncio
import os
import subprocess
import sys
import time

from streams.bench import cores_used, cpu_pressure_s, cpu_wait_s


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


def test_cpu_wait_counts_the_time_a_process_waited_for_a_core():
    """Two processes spinning on one core each wait for it about half the time."""
    core = min(os.sched_getaffinity(0))
    spin_for_2_s = "import time\nuntil = time.monotonic() + 2\nwhile time.monotonic() < until: pass"
    pressure_before = cpu_pressure_s()
    spinners = [subprocess.Popen([sys.executable, "-c", spin_for_2_s]) for _ in range(2)]
    for spinner in spinners:
        os.sched_setaffinity(spinner.pid, {core})
    time.sleep(1.5)
    waited = [cpu_wait_s(spinner.pid) for spinner in spinners]
    for spinner in spinners:
        spinner.wait()
    assert all(0.3 < seconds < 1.5 for seconds in waited), waited
    pressure_after = cpu_pressure_s()
    if pressure_before is not None and pressure_after is not None:  # the kernel reports pressure
        assert pressure_after - pressure_before > 0.3
