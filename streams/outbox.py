"""Delivery of a batch's output records through the worker's Kafka producer.

A batch yields hundreds of records (decisions, holds, state changelog entries…). Faust's
``Topic.send`` wraps every one of them in futures, callbacks and sensor calls; the records here
are already serialized, so they go straight to the app's producer; :func:`submit` hands them
over and returns one future for the broker's acknowledgement of all of them.
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


async def submit(producer: Any, records: Iterable[Record]) -> asyncio.Future[list[Any]]:
    """Hand ``records`` in order to ``producer`` (a Faust producer) and return a future that
    completes once the broker has acknowledged every one (it fails if one of them failed)."""
    send = producer.send
    return asyncio.gather(*[await send(topic, key, value, partition, None, None)
                            for topic, key, value, partition in records])

