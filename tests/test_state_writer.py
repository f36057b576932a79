"""The changelog writer: batch order, queued batches together, failures fail what follows."""

import asyncio

import pytest

from streams.outbox import Record
from streams.state_writer import StateWriter

CHANGELOG = "customer-state-changelog"


class Broker:
    """Records every request sent; a request may be made to fail."""

    def __init__(self) -> None:
        self.requests: list[list[tuple[bytes | None, bytes | None, int | None]]] = []
        self.fail_next: Exception | None = None

    async def send(self, records):
        await asyncio.sleep(0.01)  # a round trip
        if self.fail_next is not None:
            raise self.fail_next
        self.requests.append([(r.key, r.value, r.partition) for r in records])


def state(*changes: tuple[str, str, int], markers: bool = True) -> list[list[Record]]:
    """A batch's staged requests: ``(customer, state, partition)`` records, then end markers."""
    records = [Record(CHANGELOG, c.encode(), s.encode(), p) for c, s, p in changes]
    if not markers:
        return [records]
    return [records, [Record(CHANGELOG, b"__end__", None, p) for p in sorted({p for _, _, p in changes})]]


def acked() -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def test_batches_waiting_behind_one_are_written_together_with_each_customers_newest_state():
    broker = Broker()
    writer = StateWriter(broker.send)
    first_outputs = asyncio.get_running_loop().create_future()
    first = writer.write(first_outputs, state(("C1", "v1", 0), ("C2", "v1", 1)))
    second = writer.write(acked(), state(("C1", "v2", 0)))
    third = writer.write(acked(), state(("C3", "v1", 2)))
    await asyncio.sleep(0.03)
    assert broker.requests == [] and not first.done()  # nothing before the first batch's outputs
    first_outputs.set_result(None)
    await asyncio.gather(first, second, third)
    assert broker.requests == [
        [(b"C1", b"v2", 0), (b"C2", b"v1", 1), (b"C3", b"v1", 2)],  # one request, C1 once and newest
        [(b"__end__", None, 0), (b"__end__", None, 1), (b"__end__", None, 2)],  # then one marker each
    ]


async def test_a_batch_is_not_written_before_its_own_outputs_even_when_later_ones_are_acknowledged():
    broker = Broker()
    writer = StateWriter(broker.send)
    loop = asyncio.get_running_loop()
    second_outputs = loop.create_future()
    first = writer.write(acked(), state(("C1", "v1", 0), markers=False))
    second = writer.write(second_outputs, state(("C2", "v1", 0), markers=False))
    third = writer.write(acked(), state(("C3", "v1", 0), markers=False))
    await first
    await asyncio.sleep(0.03)
    assert broker.requests == [[(b"C1", b"v1", 0)]] and not third.done()
    second_outputs.set_result(None)
    await asyncio.gather(second, third)
    assert broker.requests[1:] == [[(b"C2", b"v1", 0), (b"C3", b"v1", 0)]]


async def test_failed_outputs_fail_that_batch_and_every_later_one_and_write_nothing_of_them():
    broker = Broker()
    writer = StateWriter(broker.send)
    broken = asyncio.get_running_loop().create_future()
    broken.set_exception(ConnectionError("broker gone"))
    first = writer.write(broken, state(("C1", "v1", 0)))
    second = writer.write(acked(), state(("C2", "v1", 0)))
    for write in (first, second):
        with pytest.raises(ConnectionError):
            await write
    with pytest.raises(ConnectionError):  # the worker is stopping: later batches fail at once
        await writer.write(acked(), state(("C3", "v1", 0)))
    assert broker.requests == []


async def test_a_failed_state_write_fails_its_batches_and_the_ones_after_them():
    broker = Broker()
    writer = StateWriter(broker.send)
    broker.fail_next = TimeoutError("no acknowledgement")
    first = writer.write(acked(), state(("C1", "v1", 0)))
    second = writer.write(acked(), state(("C2", "v1", 0)))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results) and broker.requests == []
