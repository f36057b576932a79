"""Customer states in a Faust table, changelogged to Kafka so a replaced worker recovers them.

A batch touches many customers; each changed customer is written once per batch, to the
changelog partition of the input partition it came from (so recovery puts it back on the
worker that owns that partition).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from faust.serializers import codecs

from streams.exposure import CustomerState

CODEC_NAME = "salesguard-customer-state"


class CustomerStateCodec(codecs.Codec):
    """Faust codec: :class:`CustomerState` <-> JSON bytes."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj.to_dict())

    def _loads(self, s: bytes) -> CustomerState:
        return CustomerState.from_dict(orjson.loads(s))


codecs.register(CODEC_NAME, CustomerStateCodec())


class CustomerStates:
    """Read and write customer states held in a Faust table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state, or None for a customer never seen."""
        return self.table.data.get(customer_id)

    def put(self, partition: int, customer_id: str, state: CustomerState) -> None:
        """Store ``state`` and send it to the changelog partition ``partition``."""
        self.table.data[customer_id] = state
        self.table.send_changelog(partition, customer_id, state)

    def items(self) -> Iterator[tuple[str, CustomerState]]:
        """Every customer state this worker holds."""
        return iter(list(self.table.data.items()))
