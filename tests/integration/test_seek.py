"""Seeking back to the committed offsets on the real broker, also where nothing was committed:
records fetched and then dropped (by Faust, during a rebalance) are read again."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from streams.batch_consumer import seek_to_committed_or_reset

pytestmark = pytest.mark.integration


async def read_all(consumer: AIOKafkaConsumer, tp: TopicPartition, count: int) -> list[int]:
    """Offsets of the next ``count`` records of ``tp``."""
    offsets: list[int] = []
    while len(offsets) < count:
        records = await consumer.getmany(tp, timeout_ms=2000)
        assert records, f"only {len(offsets)} of {count} records came"
        offsets += [record.offset for record in records[tp]]
    return offsets


@pytest.mark.parametrize(("committed", "reset", "leave", "expected"), [
    (None, "earliest", False, 0),  # nobody committed: from the first record (aiokafka stayed at 10)
    (None, "latest", False, 10),
    (4, "earliest", False, 4),
    (0, "latest", False, 0),  # a committed 0 is a position, not the absence of one
    (None, "earliest", True, 10),  # a topic left alone (a changelog) stays where it was read to
])
async def test_the_consumer_reads_again_from_the_committed_offset_or_where_the_reset_policy_says(
        settings, committed, reset, leave, expected):
    bootstrap = settings.kafka_bootstrap or ""
    topic = f"seek-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    kafka = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await kafka.start()
    for i in range(10):
        await kafka.send_and_wait(topic, str(i).encode(), partition=0)
    await kafka.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        assert await read_all(consumer, tp, 10) == list(range(10))  # read, as Faust does before dropping them
        if committed is not None:
            await consumer.commit({tp: OffsetAndMetadata(committed, "")})
        assert (await seek_to_committed_or_reset(consumer, reset, {topic} if leave else ()))[tp] == committed
        assert await consumer.position(tp) == expected
        if expected < 10:
            assert await read_all(consumer, tp, 10 - expected) == list(range(expected, 10))
    finally:
        await consumer.stop()
