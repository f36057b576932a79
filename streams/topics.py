"""Topic names and their creation. All topics are keyed by ``customer_id``; input topics and
the state table share one partition count so one worker owns all of a customer's events."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.contracts.learning import EXAMPLE_PARTITIONS
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Input topics (logical names), in the order the agent subscribes to them.
INPUT_TOPICS = ("customers", "orders", "ledger", "risk-commands")
#: Output topics (logical names).
OUTPUT_TOPICS = ("decisions", "order-holds", "hold-resolutions", "dead-letters", "model-examples", "model-alerts",
                 "rulebooks")
#: Topics whose partition count does not follow the configuration: a partition per kind of
#: training example, each learned in order by its own trainer; alerts are rare; rulebook
#: deployments are one ordered history every worker reads whole.
FIXED_PARTITIONS = {"model-examples": len(EXAMPLE_PARTITIONS), "model-alerts": 1, "rulebooks": 1}


def partitions_of(name: str, settings: Settings) -> int:
    """Partition count of topic ``name`` (logical)."""
    return FIXED_PARTITIONS.get(name, settings.partitions)


class TopicLayoutError(Exception):
    """An existing topic does not have the partition count the configuration asks for."""


#: The topics whose existing partition count is checked at start (a different count would break
#: the design), with why they need the count :func:`partitions_of` gives.
LAYOUT_REASONS = {
    **{name: "as SALESGUARD_PARTITIONS says: input topics must all have the same count (a customer's "
              "events on one worker)" for name in INPUT_TOPICS},
    "model-examples": f"one per kind of training example ({', '.join(EXAMPLE_PARTITIONS)}): delete it, or use a "
                      "new SALESGUARD_TOPIC_PREFIX",
}


async def ensure_topics(settings: Settings) -> None:
    """Create every input and output topic that does not exist yet; fail when an existing topic
    of :data:`LAYOUT_REASONS` has another partition count than :func:`partitions_of` gives."""
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
        logical = {settings.topic(name): name for name in LAYOUT_REASONS}
        for description in await admin.describe_topics(list(logical)):
            name, count = logical[description["topic"]], len(description.get("partitions", []))
            if count and count != partitions_of(name, settings):
                raise TopicLayoutError(f"topic {description['topic']!r} has {count} partitions; it needs "
                                       f"{partitions_of(name, settings)}, {LAYOUT_REASONS[name]}")
    finally:
        await admin.close()
