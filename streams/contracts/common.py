"""What every event on the wire shares: frozen, strict about unknown fields, versioned."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal[1] = 1

#: Identifiers: non-empty, bounded, printable.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
#: A money amount in the event's currency: finite, non-negative, below a trillion.
Amount = Annotated[float, Field(ge=0, lt=1e12, allow_inf_nan=False)]
#: A money amount that must be more than zero (invoices, payments, credit notes).
PositiveAmount = Annotated[float, Field(gt=0, lt=1e12, allow_inf_nan=False)]
#: ISO 4217 code; whether it is *known* is checked against the configured rates.
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
#: ISO 3166 alpha-2 country code.
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
ShortText = Annotated[str, StringConstraints(max_length=200)]


class Contract(BaseModel):
    """Base of every contract: immutable, no unknown fields, JSON on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class InputEvent(Contract):
    """Base of every input event. ``event_id`` is unique per event (the producer's
    idempotency key); ``event_time`` is when it happened in the source system."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    event_time: AwareDatetime
    customer_id: Identifier

    @cached_property
    def event_timestamp(self) -> float:
        """``event_time`` as a POSIX timestamp (computed once: the pipeline reads it often)."""
        return self.event_time.timestamp()


def utc_from_timestamp(ts: float) -> datetime:
    """A timezone-aware UTC datetime from a POSIX timestamp."""
    return datetime.fromtimestamp(ts, tz=UTC)
