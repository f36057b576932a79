"""Delivery of a batch's output records through the worker's Kafka producer.

A batch yields hundreds of records (decisions, holds, state changelog entries…). Faust's
``Topic.send`` wraps every one of them in futures, callbacks and sensor calls; the records here
are already serialized, so they go straight to the app's producer and the batch waits once for
the broker to have all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, NamedTuple


class Record(NamedTuple):
    """One record to produce: full topic name, key and value bytes, partition (None: by key)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


async def deliver(producer: Any, records: Iterable[Record]) -> int:
    """Send ``records`` in order with ``producer`` (a Faust producer) and return, with how many,
    once the broker has acknowledged every one."""
    send = producer.send
    sent = [await send(topic, key, value, partition, None, None) for topic, key, value, partition in records]
    await asyncio.gather(*sent)
    return len(sent)
