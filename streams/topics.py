"""Topic names and their creation. All topics are keyed by ``customer_id``; input topics and
the state table share one partition count so one worker owns all of a customer's events."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

log = logging.getLogger(__name__)

#: Input topics (logical names), in the order the agent subscribes to them.
INPUT_TOPICS = ("customers", "orders", "ledger", "risk-commands")
#: Output topics (logical names).
OUTPUT_TOPICS = ("decisions", "order-holds", "hold-resolutions", "dead-letters", "model-examples", "model-alerts",
                 "rulebooks")
#: Topics with one partition: one trainer learns every example, in order; alerts are rare;
#: rulebook deployments are one ordered history every worker reads whole.
SINGLE_PARTITION_TOPICS = ("model-examples", "model-alerts", "rulebooks")


def partitions_of(name: str, settings: Settings) -> int:
    """Partition count of topic ``name`` (logical)."""
    return 1 if name in SINGLE_PARTITION_TOPICS else settings.partitions


class TopicLayoutError(Exception):
    """An existing topic does not have the partition count the configuration asks for."""


async def ensure_topics(settings: Settings) -> None:
    """Create every input and output topic that does not exist yet; fail when an existing
    input topic has a different partition count (customers would be split across workers)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(settings.topic(name), num_partitions=partitions_of(name, settings),
                     replication_factor=settings.replication_factor)
            for name in INPUT_TOPICS + OUTPUT_TOPICS if settings.topic(name) not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker created them first
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
        for description in await admin.describe_topics([settings.topic(n) for n in INPUT_TOPICS]):
            count = len(description.get("partitions", []))
            if count and count != settings.partitions:
                raise TopicLayoutError(
                    f"topic {description['topic']!r} has {count} partitions but SALESGUARD_PARTITIONS="
                    f"{settings.partitions}; input topics must all have the same count")
    finally:
        await admin.close()
