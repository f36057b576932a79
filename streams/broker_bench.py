"""``salesguard broker-bench``: what one produce and one fetch cost the embedded broker as a
partition fills with small record batches.

A fetch of a partition's newest records costs the embedded broker (Tansu, memory storage) CPU
in proportion to how many record batches the partition holds (measured here: as if it walked
them; a Kafka broker looks the offset up in an index). A steady load
of small batches (a producer lingering a few milliseconds, as the benchmark's latency phase does)
makes every fetch of the input partitions dearer as the load goes on. This command measures that
on its own: one partition, one record per batch, and at each step the broker's CPU per produce
request and per fetch of the newest records.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.bench import process_cpu_s
from streams.kafka_clients import reader

#: Fetches of the newest records measured at each step.
FETCHES = 50
TOPIC = "broker-bench"


async def fetch_costs(bootstrap: str, broker_pid: int, steps: tuple[int, ...],
                      fetches: int = FETCHES) -> AsyncIterator[dict[str, float]]:
    """Fill a new one-partition topic with one-record batches up to each of ``steps``; after each,
    yield the broker's CPU per produce request (µs) and per fetch of the newest records (ms),
    and a fetch's wall time (ms)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    kafka = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)  # a request per send
    consumer = reader(bootstrap)
    await kafka.start()
    await consumer.start()
    try:
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        batches = 0
        for step in steps:
            cpu = process_cpu_s(broker_pid)
            for _ in range(step - batches):
                await kafka.send_and_wait(TOPIC, b"x" * 200)  # waited for: one record per batch
            produce_cpu, produced = process_cpu_s(broker_pid) - cpu, step - batches
            batches = step
            cpu, began = process_cpu_s(broker_pid), time.monotonic()
            for _ in range(fetches):
                consumer.seek(partition, batches - 5)
                await consumer.getmany(partition, timeout_ms=5_000)
            fetch_cpu, fetch_s = process_cpu_s(broker_pid) - cpu, time.monotonic() - began
            yield {"batches": batches, "produce_broker_cpu_us": round(produce_cpu / produced * 1e6, 1),
                   "fetch_broker_cpu_ms": round(fetch_cpu / fetches * 1e3, 2),
                   "fetch_ms": round(fetch_s / fetches * 1e3, 2)}
    finally:
        await consumer.stop()
        await kafka.stop()
