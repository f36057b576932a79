"""A message that could not be processed, with why and where it came from (topic ``dead-letters``)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from streams.contracts.common import SCHEMA_VERSION, Contract

#: Why a message was dead-lettered. ``reason`` carries the details.
DeadLetterCode = Literal[
    "not_json",
    "oversized",
    "invalid_event",
    "key_mismatch",
    "event_time_in_future",
    "unknown_currency",
    "unknown_reference",
    "processing_error",
]


class DeadLetter(Contract):
    """The raw bytes are kept (base64) so nothing is lost: fix the producer and replay."""

    schema_version: Literal[1] = SCHEMA_VERSION
    code: DeadLetterCode
    reason: str
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None
    raw_b64: str
    received_at: datetime

    @property
    def key(self) -> bytes | None:
        """The original message key."""
        return base64.b64decode(self.key_b64) if self.key_b64 is not None else None

    @property
    def raw(self) -> bytes:
        """The original message value."""
        return base64.b64decode(self.raw_b64)
