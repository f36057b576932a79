"""Helpers for tests that run their own workers on their own topics: isolated settings, a clean
in-process reference run, following an output topic, waiting for a condition, reading the
workers' counters."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streams.app import pipeline_config
from streams.bench import phase_settings
from streams.contracts import Decision
from streams.exposure import CustomerState
from streams.generator import GeneratedMessage
from streams.kafka_clients import reader
from streams.pipeline import Pipeline, RawMessage
from streams.settings import Settings
from streams.training import untrained_models
from tests.integration.conftest import Worker
from tests.integration.metrics_page import scrape, total


@dataclass
class Reference:
    """What one clean in-process run of the phases produced."""

    decisions: dict[str, Decision] = field(default_factory=dict)  # by source event id
    states: dict[str, CustomerState] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_payloads: Counter[str] = field(default_factory=Counter)  # raw_b64 of each


def replay(settings: Settings, phases: list[list[GeneratedMessage]]) -> Reference:
    """Process ``phases`` one after the other in one in-process pipeline, once each."""
    pipeline = Pipeline(pipeline_config(settings), models=untrained_models(settings))
    ref, offsets = Reference(), itertools.count()
    for phase in phases:
        for start in range(0, len(phase), 500):
            batch = [RawMessage(topic=m.topic, partition=0, offset=next(offsets), key=m.key, value=m.value,
                                timestamp=0.0) for m in phase[start:start + 500]]
            result = pipeline.process(batch, ref.states.get)
            ref.states.update((customer, state) for customer, (_, state) in result.changed.items())
            ref.decisions.update((d.source_event_id, d) for d in result.decisions)
            ref.dead_letters += len(result.dead_letters)
            ref.dead_letter_payloads.update(letter.raw_b64 for letter in result.dead_letters)
    return ref


#: A minimum no model reaches: the models never score, so decisions depend on the events only.
NEVER = 10**9


def isolated(settings: Settings, name: str, redis_db: int) -> Settings:
    """``settings`` with topics, consumer group and Redis database of their own, models off."""
    run = phase_settings(settings, f"{int(time.time())}", name, f"salesguard-{name}", redis_db)
    return run.model_copy(update={"anomaly_min_examples": NEVER, "credit_min_labels": NEVER})


@contextlib.asynccontextmanager
async def following(settings: Settings, topic: str, on_record: Callable[[dict], object]) -> AsyncIterator[None]:
    """While open, every record of ``topic`` (from its start) goes to ``on_record``."""
    consumer = reader(settings.kafka_bootstrap or "", settings.topic(topic))
    await consumer.start()

    async def follow() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=100, max_records=10_000)).values():
                for record in records:
                    on_record(orjson.loads(record.value))

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def until(condition: Callable[[], object | Awaitable[object]], what: str | Callable[[], str],
                timeout: float = 240.0) -> float:
    """Wait until ``condition()`` (sync or async) is true; returns the seconds it took. ``what``
    (or what it returns) says what did not happen in time."""
    started = time.monotonic()
    while True:
        held = condition()
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.25)


async def counter(workers: list[Worker], name: str, **labels: str) -> float:
    """The sum of a counter over the running ``workers``."""
    return sum([total(await scrape(w.port), name, **labels) for w in workers if w.running])


async def at_least(value: Awaitable[float], minimum: float) -> bool:
    return (await value) >= minimum


async def consumed(workers: list[Worker], topic: str) -> float:
    """Input messages of ``topic`` the running ``workers`` have processed."""
    return await counter(workers, "salesguard_events_consumed_total", topic=topic)


async def assigned(worker: Worker) -> bool:
    """Whether ``worker`` owns input partitions (its ``/health`` knows a lag)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{worker.port}/health") as response:
        return (await response.json())["lag"] is not None


async def changelog_records(settings: Settings, customers: set[str]) -> AsyncIterator[tuple[str, ConsumerRecord]]:
    """Every changelog record of ``customers`` with its customer, oldest first."""
    consumer = reader(settings.kafka_bootstrap or "", f"{settings.app_id}-customer-state-changelog")
    await consumer.start()
    try:
        while batches := await consumer.getmany(timeout_ms=2000, max_records=10_000):
            for records in batches.values():
                for record in records:
                    if record.key and record.value and (customer := orjson.loads(record.key)) in customers:
                        yield customer, record
    finally:
        await consumer.stop()


async def changelog_versions(settings: Settings, customers: set[str]) -> dict[str, list[str]]:
    """``events_applied@offset produced-at`` of every changelog record of ``customers``, oldest
    first (to tell a state that was lost from one that was not mirrored when a test fails, and
    to match a write to the worker logs by its time)."""
    versions: dict[str, list[str]] = {}
    async for customer, record in changelog_records(settings, customers):
        produced = datetime.fromtimestamp(record.timestamp / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
        versions.setdefault(customer, []).append(
            f"{CustomerState.from_json(record.value).events_applied}@{record.offset} {produced}")
    return versions


async def group_offsets(settings: Settings, name: str) -> dict[int, tuple[int | None, int]]:
    """``partition -> (offset committed by the workers' group or None, end offset)`` of the topic
    ``name`` (to tell records not read yet from records committed past). The embedded broker
    (Tansu 0.6) reports a partition's end as the first offset of its last record batch + 1, so
    a partition read to its end can show a committed offset a record batch above it."""
    topic = settings.topic(name)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap or "", group_id=settings.app_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: (await consumer.committed(tp), ends[tp]) for tp in partitions}
    finally:
        await consumer.stop()


async def latest_states(settings: Settings, customers: set[str]) -> dict[str, CustomerState]:
    """The state in the last changelog record of each of ``customers``."""
    return {customer: CustomerState.from_json(record.value)
            async for customer, record in changelog_records(settings, customers)}


def lost_events(settings: Settings, phases: list[list[GeneratedMessage]], customer: str,
                worker: CustomerState) -> list[str]:
    """Which of ``customer``'s events a clean replay must leave out to end where ``worker`` ended
    (events applied, exposure, receivables): ``kind topic[partition]@offset`` of each, the offset
    counted in the order the phases were produced (one producer per topic, from offset 0)."""
    partitioner, partitions = DefaultPartitioner(), list(range(settings.partitions))
    offsets: dict[int, str] = {}
    produced: Counter[tuple[str, int]] = Counter()
    for phase in phases:
        for message in phase:
            partition = partitioner(message.key, partitions, partitions)
            if message.key == customer.encode():
                at = produced[message.topic, partition]
                offsets[id(message)] = f"{message.kind} {message.topic}[{partition}]@{at}"
            produced[message.topic, partition] += 1
    mine = [[m for m in phase if m.key == customer.encode()] for phase in phases]
    wanted = (worker.events_applied, worker.exposure(), worker.receivables())
    found = []
    for left_out in (m for phase in mine for m in phase):
        state = replay(settings, [[m for m in phase if m is not left_out] for phase in mine]).states.get(customer)
        if state is not None and (state.events_applied, state.exposure(), state.receivables()) == wanted:
            found.append(offsets[id(left_out)])
    return found
