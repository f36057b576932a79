"""Bad input at volume on a real worker: 10,000 malformed messages (:mod:`streams.malformed`:
wrong types, missing fields, NaN/Infinity/negative/huge amounts, very long strings, deep
nesting, invalid UTF-8, oversized payloads, unknown types, not JSON) spread among valid traffic.
The worker never stops, every malformed message is in the dead-letter topic with a reason, and
every valid order request is decided. (Throughput with malformed input: ``salesguard bench
--malformed N``.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from streams.app import pipeline_config
from streams.generator import GeneratedMessage, SalesSimulator
from streams.kafka_clients import producer
from streams.malformed import MUTATIONS, interleave
from streams.pipeline import InvalidMessage, Pipeline, RawMessage
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.conftest import Worker
from tests.integration.streams_under_test import following, isolated, until

pytestmark = pytest.mark.integration

MALFORMED = 10_000


async def test_ten_thousand_malformed_messages_are_dead_lettered_and_every_valid_order_is_decided(
        settings: Settings, tmp_path: Path):
    run = isolated(settings, "badinput", redis_db=6)
    valid = list(SalesSimulator(seed=5, total_events=12_000, customers=300, run_id="bad", bad_rate=0.0))
    messages = list(interleave(valid, MALFORMED, seed=5))
    validator = Pipeline(pipeline_config(run))

    def rejected(message: GeneratedMessage) -> bool:  # what validation alone says, message by message
        try:
            validator._validate(RawMessage(message.topic, 0, 0, message.key, message.value, 0.0))
        except InvalidMessage:
            return True
        return False

    await ensure_topics(run)
    kafka = producer(run.kafka_bootstrap or "")
    await kafka.start()
    try:
        sent = [await kafka.send(run.topic(m.topic), key=m.key, value=m.value) for m in messages]
        positions = [(m, (meta.partition, meta.offset)) for m, meta in zip(messages, await asyncio.gather(*sent),
                                                                           strict=True)]
    finally:
        await kafka.stop()
    bad = {(m.topic, *at): m.kind for m, at in positions if not m.is_valid and rejected(m)}
    orders = {orjson.loads(m.value)["event_id"] for m, _ in positions if m.is_valid and m.needs_decision}
    valid_at = {(m.topic, *at) for m, at in positions if m.is_valid}
    assert sum(not m.is_valid for m in messages) == MALFORMED and len(bad) >= 0.99 * MALFORMED
    assert {kind.removeprefix("bad:") for kind in bad.values()} == set(MUTATIONS)

    letters: dict[tuple[str, int, int], dict] = {}
    decided: set[str] = set()
    worker = Worker(run, tmp_path)
    worker.start()
    try:
        async with following(run, "dead-letters", lambda r: letters.setdefault(
                (r["source_topic"], r["partition"], r["offset"]), r)), following(
                run, "decisions", lambda r: decided.add(r["source_event_id"])):
            await until(lambda: letters.keys() >= bad.keys() and decided >= orders, lambda: (
                f"{len(bad.keys() - letters.keys())} malformed messages not dead-lettered, "
                f"{len(orders - decided)} orders not decided (e.g. {sorted(orders - decided)[:5]}); valid messages "
                f"dead-lettered: {[(r['code'], r['reason']) for at, r in letters.items() if at in valid_at][:5]}"),
                timeout=240)
        assert worker.running
    finally:
        worker.stop()
    assert all(letters[at]["reason"] and letters[at]["code"] for at in bad)
    # nothing valid went to the dead letters: only malformed messages (a few mutations stay valid)
    assert {at for at in letters} <= {(m.topic, *at) for m, at in positions if not m.is_valid}
    print(f"\nbad input: {len(messages)} messages, {MALFORMED} malformed, {len(letters)} dead-lettered "
          f"(validation rejects {len(bad)}), {len(orders)} valid order requests, all decided")
