"""The topic layout on the real broker: an existing input topic with another partition count
than configured, or a ``model-examples`` topic without a partition per kind of training example,
is refused at start, naming the topic and what it needs."""

from __future__ import annotations

import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import Settings
from streams.topics import TopicLayoutError, ensure_topics

pytestmark = pytest.mark.integration


async def existing(settings: Settings, name: str, partitions: int) -> Settings:
    """Settings with topics of their own, in which topic ``name`` exists with ``partitions``."""
    run = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}layout-{name}-{time.time_ns()}."})
    admin = AIOKafkaAdminClient(bootstrap_servers=run.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(run.topic(name), num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return run


async def test_an_input_topic_of_another_partition_count_is_refused(settings: Settings):
    run = await existing(settings, "orders", settings.partitions + 1)
    with pytest.raises(TopicLayoutError, match=rf"orders' has {settings.partitions + 1} partitions; it needs "
                                               rf"{settings.partitions}, as SALESGUARD_PARTITIONS says"):
        await ensure_topics(run)


async def test_a_model_examples_topic_of_one_partition_is_refused(settings: Settings):
    run = await existing(settings, "model-examples", 1)  # as a deployment of the single-trainer layout made it
    with pytest.raises(TopicLayoutError, match=r"model-examples' has 1 partitions; it needs 2, one per kind"):
        await ensure_topics(run)
