"""``salesguard broker-bench``: what one produce and one fetch cost the embedded broker as a
partition fills with small record batches.

The embedded broker (Tansu, memory storage) finds a fetch's records by walking the partition's
record batches: a fetch of a partition's newest records costs it CPU in proportion to how many
batches the partition holds, where a Kafka broker looks the offset up in an index. A steady load
of small batches (a producer lingering a few milliseconds, as the benchmark's latency phase does)
makes every fetch of the input partitions dearer as the load goes on. This command measures that
on its own: one partition, one record per batch, and at each step the broker's CPU per produce
request and per fetch of the newest records.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.bench import process_cpu_s
from streams.embedded import ChildService, broker_command, free_port
from streams.kafka_clients import reader

#: Record batches in the partition at which the costs are measured.
STEPS = (1_000, 5_000, 10_000, 20_000)
#: Fetches of the newest records measured at each step.
FETCHES = 50
TOPIC = "broker-bench"


def embedded_broker(run_dir: Path) -> ChildService:
    """An embedded broker on a free port (not started), logging to ``run_dir/broker.log``."""
    port = free_port()
    return ChildService("broker (tansu)", broker_command(port), port, run_dir / "broker.log")


async def fetch_costs(bootstrap: str, broker_pid: int, steps: tuple[int, ...] = STEPS,
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
