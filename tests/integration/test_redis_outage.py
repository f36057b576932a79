"""Redis unreachable for 30 s while events flow (the server is frozen with SIGSTOP, as a hung
server or a network partition looks to a client): decisions go on (state is in the Faust
table), the failed writes are counted (``salesguard_redis_errors_total``, which the
``SalesguardRedisErrors`` alert watches), and once Redis answers again the mirror catches up:
every customer's snapshot shows every event applied."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from streams.bench import load_backlog
from streams.embedded import ChildService, free_port, redis_command
from streams.generator import SalesSimulator
from streams.settings import Settings
from tests.integration.conftest import Worker
from tests.integration.streams_under_test import at_least, counter, following, isolated, replay, until

pytestmark = pytest.mark.integration

OUTAGE_S = 30.0


@pytest.mark.timeout(600)
async def test_decisions_go_on_while_redis_is_down_and_the_mirror_catches_up(settings: Settings, tmp_path: Path):
    port = free_port()
    redis = ChildService("redis (outage)", redis_command(port, tmp_path), port, tmp_path / "redis.log")
    redis.start()
    run = isolated(settings, "outage", redis_db=0).model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    messages = list(SalesSimulator(seed=3, total_events=12_000, customers=300, run_id="out", bad_rate=0.0))
    before, during = messages[:6_000], messages[6_000:]
    ref = await asyncio.to_thread(replay, run, [messages])
    decided: set[str] = set()
    worker = Worker(run, tmp_path)
    mirror = aioredis.from_url(run.redis_url or "", socket_timeout=2.0)
    try:
        worker.start()
        async with following(run, "decisions", lambda r: decided.add(r["source_event_id"])):
            await load_backlog(run, before)
            first = {orjson.loads(m.value)["event_id"] for m in before if m.needs_decision}
            await until(lambda: decided >= first, "the decisions before the outage")

            assert redis.process is not None
            os.kill(redis.process.pid, signal.SIGSTOP)
            down_at = time.monotonic()
            await load_backlog(run, during)
            await until(lambda: decided >= ref.decisions.keys(), "every decision, Redis down", timeout=OUTAGE_S)
            decided_while_down_s = time.monotonic() - down_at
            await until(lambda: at_least(counter([worker], "salesguard_redis_errors_total"), 1),
                        "Redis errors counted", timeout=OUTAGE_S)
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            os.kill(redis.process.pid, signal.SIGCONT)

            async def caught_up() -> bool:
                keys = [f"sg:customer:{c}" for c in ref.states]
                snapshots = await mirror.mget(keys)
                return all(s is not None and orjson.loads(s)["events_applied"] == state.events_applied
                           for s, state in zip(snapshots, ref.states.values(), strict=True))

            catch_up_s = await until(caught_up, "the mirror to catch up", timeout=60)
        assert worker.running
        errors = await counter([worker], "salesguard_redis_errors_total")
    finally:
        worker.stop()
        await mirror.aclose()
        if redis.running:
            os.kill(redis.pid, signal.SIGCONT)
        redis.stop()
    assert decided_while_down_s < OUTAGE_S and errors >= 1
    requests = sum(m.needs_decision for m in during)
    print(f"\nredis outage: {len(messages)} events, {requests} order requests sent during the {OUTAGE_S:.0f} s "
          f"outage, all decided {decided_while_down_s:.1f} s into it; {errors:.0f} failed writes counted; "
          f"mirror caught up {catch_up_s:.1f} s after Redis answered again")
