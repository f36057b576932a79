"""Plain Kafka clients for the tools around the workers (generator, demo, tests)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer that waits for the leader's acknowledgement and batches briefly. (The
    idempotent producer is off: the embedded broker refuses its handshake.)"""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, max_request_size=2_000_000,
                            request_timeout_ms=30_000)


def reader(bootstrap: str, *topics: str) -> AIOKafkaConsumer:
    """A consumer outside any group that reads ``topics`` from the beginning."""
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                            enable_auto_commit=False)
