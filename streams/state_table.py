"""Customer states in a Faust table, changelogged to Kafka so a replaced worker recovers them.

A batch touches many customers; each changed customer is written once per batch, to the
changelog partition of the input partition it came from (so recovery puts it back on the
worker that owns that partition). The table's store is Faust's in-memory store, which also
knows each customer's partition (so that a worker forgets the customers of partitions it gave
away), with one change: recovery never puts an older state over a newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from faust import stores
from faust.serializers import codecs
from faust.stores import memory

from streams.exposure import CustomerState
from streams.outbox import Record

log = logging.getLogger(__name__)

CODEC_NAME = "salesguard-customer-state"
#: Key of the end marker: a tombstone, so recovery applies it as "delete nothing".
END_MARKER_KEY = "__end-of-batch__"


class CustomerStateCodec(codecs.Codec):
    """Faust codec: :class:`CustomerState` <-> JSON bytes."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.to_json()

    def _loads(self, s: bytes) -> CustomerState:
        return CustomerState.from_dict(orjson.loads(s))


codecs.register(CODEC_NAME, CustomerStateCodec())


class CustomerStateStore(memory.Store):
    """Faust's in-memory table store, except that a changelog record never replaces a customer's
    state by one that has applied fewer events (the table's store: ``store=STORE_URL``).

    Faust's recovery buffers the records it reads and applies them later; a recovery cut short
    by the next rebalance left records of an old state in that buffer, applied at the following
    rebalance over the newer state the worker had built meanwhile, which then wrote its next
    batch from the old one: events lost (seen in the reliability test). A state's
    ``events_applied`` only grows along its changelog, so an older record can be recognised.
    """

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        data, partition_of = self.data, self._key_partition
        stale = 0
        for event in batch:
            key = to_key(event.key)
            if event.message.value is None:  # a tombstone (the end markers): delete
                data.pop(key, None)
                partition_of.pop(key, None)
                continue
            state = to_value(event.value)
            current = data.get(key)
            if current is not None and state.events_applied < current.events_applied:
                stale += 1
                continue
            data[key] = state
            partition_of[key] = event.message.partition
        if stale:
            log.info("kept %d customer states newer than the changelog records read for them", stale)


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

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state, or None for a customer never seen."""
        return self.table.data.get(customer_id)

    def stage(self, changed: Mapping[str, tuple[int, CustomerState]], end_markers: bool) -> list[list[Record]]:
        """Store a batch's changed states (``customer_id -> (partition, state)``) in the table and
        return their changelog records as the produce requests to send one after the other: each
        state to the changelog partition of the input it came from, encoded now (later batches
        change the same objects) as the table's serializers would (JSON key,
        :class:`CustomerStateCodec` value).

        With ``end_markers``, one end marker per partition follows in a request of its own. Tansu
        0.6 reports a partition's end offset as the first offset of its last record batch + 1,
        so Faust's recovery would stop before the newest states of a multi-record batch; a
        single-record batch at the end makes it exact. The requests of one batch must be sent
        before the next batch's, so that no other write shares a marker's batch.
        """
        topic = self.changelog.get_topic_name()
        data, partition_of = self.table.data, self.table.data._key_partition
        records = []
        for customer_id, (partition, state) in changed.items():
            data[customer_id] = state
            partition_of[customer_id] = partition  # as recovery records it: Faust drops the
            # customers of partitions this worker no longer owns when a rebalance completes
            records.append(Record(topic, orjson.dumps(customer_id), state.to_json(), partition))
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
        store = self.table.data
        for customer, partition in list(store._key_partition.items()):
            if partition not in partitions:
                store.data.pop(customer, None)
                del store._key_partition[customer]
        return set(store._key_partition)

    def items(self) -> Iterator[tuple[str, CustomerState]]:
        """Every customer state this worker holds."""
        return iter(list(self.table.data.items()))
