"""Customer states in a Faust table, changelogged to Kafka so a replaced worker recovers them.

A batch touches many customers; each changed customer is written once per batch, to the
changelog partition of the input partition it came from (so recovery puts it back on the
worker that owns that partition). The table's store is Faust's in-memory store, which also
knows each customer's partition (so that a worker forgets the customers of partitions it gave
away), with two changes: it holds each state as its changelog record, and recovery never
puts an older state over a newer one.

Held as objects, a state took 1.3 KB (100,000 customers of ``salesguard bench``'s traffic:
133 MB, most of a worker's memory); stored as its changelog record
(:meth:`CustomerState.to_json`, written anyway), about a quarter of that. A state is decoded
when a batch reads it (~4 µs); the states of the :data:`HOT_STATES` customers written last are
kept decoded too, so that customers in successive batches and the Redis mirror's snapshots of
what a batch changed are not decoded again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from faust import stores
from faust.stores import memory

from streams.exposure import CustomerState
from streams.outbox import Record

log = logging.getLogger(__name__)

#: Key of the end marker: a tombstone, so recovery applies it as "delete nothing".
END_MARKER_KEY = "__end-of-batch__"
#: How many of the states written last are kept decoded.
HOT_STATES = 5_000


class CustomerStateStore(memory.Store):
    """Faust's in-memory table store holding each customer's state as its changelog record,
    where a changelog record never replaces a customer's state by one that has applied fewer
    events (the table's store: ``store=STORE_URL``).

    Faust's recovery buffers the records it reads and applies them later; a recovery cut short
    by the next rebalance left records of an old state in that buffer, applied at the following
    rebalance over the newer state the worker had built meanwhile, which then wrote its next
    batch from the old one: events lost (seen in the reliability test). A state's
    ``events_applied`` only grows along its changelog, so an older record can be recognised.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Decoded states of the customers written last (oldest first), each the state its
        #: record in ``data`` holds.
        self.hot: dict[str, CustomerState] = {}

    def read(self, customer_id: str) -> CustomerState | None:
        """The customer's state, or None for a customer this store does not hold."""
        blob = self.data.get(customer_id)
        if blob is None:
            return None
        return self.hot.get(customer_id) or CustomerState.from_json(blob)

    def put(self, customer_id: str, partition: int, state: CustomerState) -> bytes:
        """Hold ``state`` for the customer (its input partition, as recovery records it: Faust
        drops the customers of partitions this worker no longer owns) and return its record."""
        # a copy of exact size: orjson's bytes keep the buffer it wrote into (measured: 4-8 KB
        # for records of 74-600 bytes; home-assistant/core#181240 trims the same way)
        blob = self.data[customer_id] = bytes(memoryview(state.to_json()))
        self._key_partition[customer_id] = partition
        hot = self.hot
        hot.pop(customer_id, None)
        hot[customer_id] = state
        if len(hot) > HOT_STATES:
            del hot[next(iter(hot))]
        return blob

    def forget(self, customer_id: str) -> None:
        """Drop the customer's state."""
        self.data.pop(customer_id, None)
        self._key_partition.pop(customer_id, None)
        self.hot.pop(customer_id, None)

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        data, partition_of, hot = self.data, self._key_partition, self.hot
        stale = 0
        for event in batch:
            key = to_key(event.key)
            blob = event.message.value
            if blob is None:  # a tombstone (the end markers): delete
                self.forget(key)
                continue
            current = data.get(key)
            if current is not None and events_applied(blob) < events_applied(current):
                stale += 1
                continue
            data[key] = blob
            partition_of[key] = event.message.partition
            hot.pop(key, None)
        if stale:
            log.info("kept %d customer states newer than the changelog records read for them", stale)


def events_applied(blob: bytes) -> int:
    """How many events the state stored as ``blob`` has applied."""
    return CustomerState.from_json(blob).events_applied


#: The customer-state table's store, registered with Faust's stores under this scheme. It has a
#: host because Faust uses the app's store when the table's URL is false, and a URL without
#: host or path is false.
STORE_URL = "salesguard-memory://customer-state"
stores.STORES.aliases["salesguard-memory"] = f"{__name__}:CustomerStateStore"


class CustomerStates:
    """Read and write customer states held in a Faust table (with :class:`CustomerStateStore`)."""

    def __init__(self, table: Any, changelog: Any) -> None:
        self.table = table
        self.changelog = changelog

    @property
    def store(self) -> CustomerStateStore:
        return self.table.data

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state, or None for a customer never seen. A state read is only kept
        when it is written back (:meth:`stage`)."""
        return self.store.read(customer_id)

    def partition(self, customer_id: str) -> int:
        """The input partition of a customer this worker holds (KeyError for another)."""
        return self.store._key_partition[customer_id]

    def stage(self, changed: Mapping[str, tuple[int, CustomerState]], end_markers: bool) -> list[list[Record]]:
        """Store a batch's changed states (``customer_id -> (partition, state)``) in the table and
        return their changelog records as the produce requests to send one after the other: each
        state to the changelog partition of the input it came from, encoded now (later batches
        change the same objects): JSON key, :meth:`CustomerState.to_json` value.

        With ``end_markers``, one end marker per partition follows in a request of its own. Tansu
        0.6 reports a partition's end offset as the first offset of its last record batch + 1,
        so Faust's recovery would stop before the newest states of a multi-record batch; a
        single-record batch at the end makes it exact. The requests of one batch must be sent
        before the next batch's, so that no other write shares a marker's batch.
        """
        topic = self.changelog.get_topic_name()
        put = self.store.put
        records = [Record(topic, orjson.dumps(customer_id), put(customer_id, partition, state), partition)
                   for customer_id, (partition, state) in changed.items()]
        if not records:
            return []
        if not end_markers:
            return [records]
        marker = orjson.dumps(END_MARKER_KEY)
        return [records, [Record(topic, marker, None, partition)
                          for partition in {partition for partition, _ in changed.values()}]]

    def keep_only(self, partitions: set[int]) -> set[str]:
        """Forget the customers of every partition but ``partitions`` (given away in a rebalance;
        Faust does the same after a recovery, but not when a rebalance needed none) and return
        the customers kept."""
        store = self.store
        for customer, partition in list(store._key_partition.items()):
            if partition not in partitions:
                store.forget(customer)
        return set(store._key_partition)

    def customer_ids(self) -> list[str]:
        """Every customer whose state this worker holds."""
        return list(self.store.data)
