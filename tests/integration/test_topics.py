"""The topic layout on the real broker: an existing ``model-examples`` topic without a partition
per kind of training example is refused at start, naming the topic and what it needs."""

from __future__ import annotations

import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import Settings
from streams.topics import TopicLayoutError, ensure_topics

pytestmark = pytest.mark.integration


async def test_a_model_examples_topic_of_one_partition_is_refused(settings: Settings):
    run = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}layout-{int(time.time())}."})
    admin = AIOKafkaAdminClient(bootstrap_servers=run.kafka_bootstrap)
    await admin.start()
    try:  # as a deployment of the single-trainer layout created it
        await admin.create_topics([NewTopic(run.topic("model-examples"), num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    with pytest.raises(TopicLayoutError, match=r"model-examples' has 1 partitions; it needs 2, one per kind"):
        await ensure_topics(run)
