"""A message consumed from an input topic, as the pipeline sees it (no Kafka or Faust types)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawMessage:
    """One consumed message: where it came from and its bytes. ``topic`` is the logical
    (unprefixed) input topic; ``timestamp`` is the produce time in POSIX seconds."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
