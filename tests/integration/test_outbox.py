"""The outbox on the real broker: records go where ``AIOKafkaProducer.send`` would put them, in
the order they were handed over per partition, across full batches and successive calls."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka_clients import reader
from streams.outbox import Outbox, Record

pytestmark = pytest.mark.integration

KEYS = [f"C-{i:03d}".encode() for i in range(40)]


async def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of the first ``count`` records of ``topic``, in offset order per partition."""
    consumer = reader(bootstrap, topic)
    await consumer.start()
    records: list[tuple[int, bytes | None, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records += [(r.partition, r.key, r.value) for r in batch]
    finally:
        await consumer.stop()
    return records


async def test_records_go_where_the_producer_puts_them_in_order_across_batches_and_calls(settings):
    bootstrap = settings.kafka_bootstrap
    by_outbox, by_send = "outbox-test.records", "outbox-test.sent-one-by-one"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 4, 1) for name in (by_outbox, by_send)])
    await admin.close()
    # A small batch size: a partition's records fill several batches.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=2048)
    await producer.start()
    try:
        numbers = itertools.count()
        calls = [[Record(by_outbox, KEYS[n % len(KEYS)], b"%d:" % n + b"x" * 200)
                  for n in itertools.islice(numbers, 150)] for _ in range(3)]
        calls[1].append(Record(by_outbox, None, b"keyless"))
        calls[2].append(Record(by_outbox, b"C-000", b"pinned", partition=2))
        outbox = Outbox()
        acks = [await outbox.submit(producer, records) for records in calls]
        await asyncio.gather(*acks)
        for key in KEYS:  # where the producer's own send puts each key
            await producer.send(by_send, b"", key=key)
        await producer.flush()
    finally:
        await producer.stop()

    records = await read_all(bootstrap, by_outbox, 452)
    sent = {key: partition for partition, key, _ in await read_all(bootstrap, by_send, len(KEYS))}
    assert len(records) == 452
    assert {key: partition for partition, key, value in records if key and value != b"pinned"} == sent
    assert (2, b"C-000", b"pinned") in records and any(key is None for _, key, _ in records)
    for partition in range(4):  # each partition's records in the order handed over, all three calls
        numbered = [int(value.split(b":")[0]) for p, _, value in records if p == partition and b":" in value]
        assert numbered == sorted(numbered)
    assert sorted(int(value.split(b":")[0]) for _, _, value in records if b":" in value) == list(range(450))
