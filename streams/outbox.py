"""Delivery of a batch's output records through the worker's Kafka producer, a record batch per
topic-partition.

A batch yields hundreds of records (decisions, holds, state changelog entries…), already
serialized. Through ``AIOKafkaProducer.send`` each record costs a coroutine, a future and its
metadata: measured against the embedded broker, 15-20 µs of CPU per record with its
acknowledgement, against 4-5 µs when the same records fill record batches (``create_batch``) that
are queued whole (``send_batch``, one future per batch). :class:`Outbox` does the latter: records
without a partition go where the producer's default partitioner puts them (murmur2 of the key,
as ``send`` does), each topic-partition's records keep their order in one batch (more when one
fills up: the producer's ``max_batch_size``), and timestamps are taken when the records are
handed over.

aiokafka queues a partition's next batch only once the one before has gone out in a produce
request, which waits while another request is in flight; that wait is not on the caller's path:
:meth:`Outbox.submit` fills the batches and returns, and a task queues them after the previous
call's (so each partition's records go out in the order of the calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, NamedTuple, cast

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner


def faust_producer(app: Any) -> AIOKafkaProducer:
    """The Kafka client inside Faust app ``app``'s producer (records already serialized go to it
    directly)."""
    return cast(Any, app.producer)._ensure_producer()


class Record(NamedTuple):
    """One record to produce: full topic name, key and value bytes, partition (None: by key)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


#: A filled record batch with its topic and partition.
Batch = tuple[str, int, Any]


class Outbox:
    """Hands records to a producer as record batches, in the order of the calls."""

    def __init__(self) -> None:
        self.partitioner = DefaultPartitioner()
        #: Completes once the previous call's batches are queued.
        self._queued: asyncio.Future[None] | None = None

    async def submit(self, producer: AIOKafkaProducer, records: Iterable[Record]) -> asyncio.Future[None]:
        """Hand ``records`` to ``producer``; the returned future completes once the broker has
        acknowledged every one (it fails if one of them failed)."""
        batches = await self._fill(producer, records)
        previous, queued = self._queued, asyncio.get_running_loop().create_future()
        self._queued = queued
        return asyncio.ensure_future(self._send(producer, batches, previous, queued))

    async def send(self, producer: AIOKafkaProducer, records: Iterable[Record]) -> None:
        """Hand ``records`` to ``producer`` and wait until the broker has acknowledged them all."""
        await (await self.submit(producer, records))

    async def _fill(self, producer: AIOKafkaProducer, records: Iterable[Record]) -> list[Batch]:
        """The records in filled batches, in the order each topic-partition first appears."""
        batches: list[Batch] = []
        filling: dict[tuple[str, int], Any] = {}
        partitions: dict[str, tuple[list[int], list[int]]] = {}
        by_key: dict[tuple[str, bytes | None], int] = {}
        for topic, key, value, partition in records:
            if partition is None and (partition := by_key.get((topic, key))) is None:
                if topic not in partitions:  # as AIOKafkaProducer.send finds them
                    known = list(await producer.partitions_for(topic))
                    partitions[topic] = known, list(producer.client.cluster.available_partitions_for_topic(topic))
                partition = self.partitioner(key, *partitions[topic])
                if key is not None:  # no key: a random partition per record
                    by_key[topic, key] = partition
            batch = filling.get((topic, partition))
            if batch is None or batch.append(timestamp=None, key=key, value=value) is None:
                batch = filling[topic, partition] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value)  # a new batch takes any record
                batches.append((topic, partition, batch))
        return batches

    @staticmethod
    async def _send(producer: AIOKafkaProducer, batches: list[Batch], previous: asyncio.Future[None] | None,
                    queued: asyncio.Future[None]) -> None:
        """Queue ``batches`` once ``previous`` are queued, then wait for their acknowledgements."""
        try:
            if previous is not None:
                await asyncio.wait([previous])  # its own failure is its caller's
            acks = [await producer.send_batch(batch, topic, partition=partition) for topic, partition, batch in batches]
        finally:
            queued.set_result(None)
        await asyncio.gather(*acks)
