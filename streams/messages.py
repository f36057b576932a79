"""A message consumed from an input topic, as the pipeline sees it (no Kafka or Faust types)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RawMessage:
    """One consumed message: where it came from and its bytes. ``topic`` is the logical
    (unprefixed) input topic; ``timestamp`` is the produce time in POSIX seconds. (Not frozen:
    a frozen dataclass sets each field through ``object.__setattr__``, 1.0 µs per message
    instead of 0.2; nothing changes one.)"""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
