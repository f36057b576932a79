"""The batch consumer's fetches: records Faust would drop after the Kafka client had moved past
them (their partition paused or revoked meanwhile, the flow stopped, the generation changed) are
read again, from the first of them."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streams.app import build_app
from streams.batch_consumer import BatchConsumer
from streams.settings import Settings

ORDERS, LEDGER = TP("orders", 0), TP("ledger", 1)


def record(tp: TP, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic=tp.topic, partition=tp.partition, offset=offset, timestamp=0, timestamp_type=0,
                          key=b"C-1", value=b"{}", checksum=None, serialized_key_size=3,
                          serialized_value_size=2, headers=())


@pytest.fixture
def consumer(tmp_path) -> BatchConsumer:
    consumer = build_app(Settings(data_dir=str(tmp_path))).app.consumer
    assert isinstance(consumer, BatchConsumer)
    consumer.assignment = lambda: {ORDERS, LEDGER}  # type: ignore[method-assign]
    consumer.highwater = lambda tp: 100  # type: ignore[method-assign]
    consumer.resume_flow()
    return consumer


def fetching(consumer: BatchConsumer, fetched: dict[TP, list[int]], active: set[TP]) -> list[dict[TP, int]]:
    """Make the consumer's next fetch return ``fetched`` (offsets by partition) with ``active``
    as its active partitions; returns the list its seeks are recorded in."""
    seeks: list[dict[TP, int]] = []

    async def wait_next_records(timeout: float):
        return {tp: [record(tp, offset) for offset in offsets] for tp, offsets in fetched.items()}, active

    async def seek_wait(partitions: dict[TP, int]) -> None:
        seeks.append(dict(partitions))

    consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
    consumer.seek_wait = seek_wait  # type: ignore[method-assign,assignment]
    return seeks


async def taken(consumer: BatchConsumer, on_each=lambda: None) -> list[tuple[TP, int]]:
    result = []
    async for tp, message in consumer.getmany(timeout=1.0):
        result.append((tp, message.offset))
        on_each()
    return result


async def test_the_records_of_a_partition_no_longer_active_are_read_again_from_the_first_of_them(consumer):
    seeks = fetching(consumer, {ORDERS: [5, 6, 7], LEDGER: [40, 41]}, active={LEDGER})
    assert await taken(consumer) == [(LEDGER, 40), (LEDGER, 41)]
    assert seeks == [{ORDERS: 5}]


async def test_a_partition_paused_while_its_records_are_handed_on_is_read_again_from_the_first_not_handed_on(
        consumer):
    active = {ORDERS, LEDGER}
    seeks = fetching(consumer, {ORDERS: [5, 6, 7]}, active=active)
    assert await taken(consumer, on_each=lambda: active.discard(ORDERS)) == [(ORDERS, 5)]
    assert seeks == [{ORDERS: 6}]


async def test_when_the_flow_stops_every_partition_is_read_again_from_its_first_record_not_handed_on(consumer):
    firsts = {ORDERS: 5, LEDGER: 40}
    seeks = fetching(consumer, {ORDERS: [5, 6], LEDGER: [40, 41]}, active={ORDERS, LEDGER})
    [(tp, offset)] = await taken(consumer, on_each=consumer.stop_flow)
    assert {k: v for seek in seeks for k, v in seek.items()} == {**firsts, tp: offset + 1}


async def test_a_revoked_partition_is_left_to_its_next_owner(consumer):
    consumer.assignment = lambda: {LEDGER}  # type: ignore[method-assign]
    seeks = fetching(consumer, {ORDERS: [5, 6]}, active={LEDGER})
    assert await taken(consumer) == [] and seeks == []
