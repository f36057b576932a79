"""A batch window (``SALESGUARD_BATCH_WINDOW_MS``) on real workers: a trickle of orders is
decided in few batches, each as one event at a time would be, and a worker joins the group
while the window gathers orders."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.contracts import Decision
from streams.generator import GeneratedMessage
from streams.kafka_clients import producer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests import events as ev
from tests.integration.conftest import Worker
from tests.integration.streams_under_test import (
    assigned,
    at_least,
    consumed,
    counter,
    following,
    isolated,
    replay,
    until,
)

pytestmark = pytest.mark.integration

WINDOW_MS = 500
#: Between two orders of a trickle: without a window, about one batch each.
TRICKLE_S = 0.02
#: Batches a worker has written.
BATCHES = "salesguard_batch_seconds_count"


def customers(name: str, count: int) -> list[dict]:
    return [ev.customer(f"C-{name}-{i}", limit=5_000.0) for i in range(count)]


def order(name: str, i: int, customer_count: int) -> dict:
    return ev.order(f"C-{name}-{i % customer_count}", f"SO-{name}-{i}", 400.0 + 100 * (i % 40), days=i / 1000)


async def produce(kafka: AIOKafkaProducer, settings: Settings, event: dict) -> None:
    """Send ``event`` and wait until the broker has it."""
    await kafka.send_and_wait(settings.topic(ev.topic_of(event)), key=event["customer_id"].encode(),
                              value=ev.encode(event))


async def onboard(kafka: AIOKafkaProducer, settings: Settings, worker: Worker, master_data: list[dict]) -> None:
    """Send ``master_data`` and wait until ``worker`` has consumed it."""
    for event in master_data:
        await produce(kafka, settings, event)
    await until(lambda: at_least(consumed([worker], "customers"), len(master_data)), "master data consumed")


def as_decided_in_process(settings: Settings, master_data: list[dict], orders: list[dict]) -> dict:
    """Outcome and reasons by order event id, from a clean in-process run (which decides as one event
    at a time: tests/test_pipeline.py)."""
    def message(event: dict) -> GeneratedMessage:
        return GeneratedMessage(ev.topic_of(event), event["customer_id"].encode(), ev.encode(event), event["type"])

    reference = replay(settings, [[message(e) for e in master_data], [message(e) for e in orders]])
    return {i: (d.outcome, d.reasons) for i, d in reference.decisions.items()}


def collecting(decided: dict[str, Decision]):
    return lambda record: decided.setdefault(record["source_event_id"], Decision.model_validate(record))


async def test_a_trickle_of_orders_is_decided_in_batches_that_wait_for_the_window(settings: Settings, tmp_path: Path):
    run = isolated(settings, "window", redis_db=7).model_copy(update={"batch_window_ms": WINDOW_MS})
    master_data = customers("WIN", 3)
    orders = [order("WIN", i, 3) for i in range(30)]
    await ensure_topics(run)
    worker = Worker(run, tmp_path)
    worker.start()
    decided: dict[str, Decision] = {}
    try:
        async with producer(run.kafka_bootstrap or "") as kafka:
            await onboard(kafka, run, worker, master_data)
            before = await counter([worker], BATCHES)
            async with following(run, "decisions", collecting(decided)):
                started = time.monotonic()
                for event in orders:
                    await produce(kafka, run, event)
                    await asyncio.sleep(TRICKLE_S)
                await until(lambda: len(decided) == len(orders), lambda: f"{len(orders) - len(decided)} not decided")
                deciding_s = time.monotonic() - started
        taken = await counter([worker], BATCHES) - before
    finally:
        worker.stop()
    # a batch per fetch here, and fetches begin at least a window apart: one of them may have
    # begun before the first order was sent
    assert 1 <= taken <= deciding_s / (WINDOW_MS / 1000) + 2 < len(orders)
    assert {i: (d.outcome, d.reasons) for i, d in decided.items()} == as_decided_in_process(run, master_data, orders)


@pytest.mark.timeout(300)
async def test_a_worker_joins_while_the_window_gathers_orders(settings: Settings, tmp_path: Path):
    # Faust gives partitions away only once every message read is acked: a batch held back for
    # its window while the group rebalances stalls the rebalance (as a first version did).
    run = isolated(settings, "window-join", redis_db=8).model_copy(update={"batch_window_ms": WINDOW_MS})
    master_data = customers("WJ", 20)
    first, second = Worker(run, tmp_path / "first"), Worker(run, tmp_path / "second")
    for worker in (first, second):
        worker.run_dir.mkdir()
    await ensure_topics(run)
    first.start()
    decided: dict[str, Decision] = {}
    sent: list[dict] = []
    stop = asyncio.Event()
    try:
        async with producer(run.kafka_bootstrap or "") as kafka:
            await onboard(kafka, run, first, master_data)

            async def trickle() -> None:
                for i in itertools.count():
                    if stop.is_set():
                        return
                    sent.append(order("WJ", i, len(master_data)))
                    await produce(kafka, run, sent[-1])
                    await asyncio.sleep(TRICKLE_S)

            async with following(run, "decisions", collecting(decided)):
                sending = asyncio.create_task(trickle())
                try:
                    await until(lambda: len(decided) >= 20, "the first worker's first decisions")
                    await asyncio.to_thread(second.start)
                    await until(lambda: assigned(second), "the second worker's partitions", timeout=90)
                    await until(lambda: at_least(counter([second], "salesguard_decisions_total"), 1),
                                "the second worker's first decision", timeout=60)
                    asyncio.get_running_loop().call_later(1.0, stop.set)  # and a second more of orders
                    await sending
                finally:
                    sending.cancel()
                await until(lambda: len(decided) == len(sent), lambda: f"{len(sent) - len(decided)} not decided")
    finally:
        second.stop()
        first.stop()
    assert {i: (d.outcome, d.reasons) for i, d in decided.items()} == as_decided_in_process(run, master_data, sent)
