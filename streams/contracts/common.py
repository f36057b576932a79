"""What every event on the wire shares: frozen, strict about unknown fields, versioned."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

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


T = TypeVar("T")


class computed_once(Generic[T]):  # noqa: N801 - used as a decorator, as functools.cached_property
    """A property computed on first read and then kept in the instance (as
    ``functools.cached_property``, without the lock Python 3.11's takes on every first read:
    1.7 µs instead of 0.7 per event for ``event_timestamp``).

    >>> class Box:
    ...     @computed_once
    ...     def value(self) -> int:
    ...         print("computing")
    ...         return 42
    >>> box = Box()
    >>> box.value
    computing
    42
    >>> box.value
    42
    """

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.compute(instance)  # later reads find it there
        return value


class Contract(BaseModel):
    """Base of every contract: immutable, no unknown fields, JSON on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False,
                              ignored_types=(computed_once,))


class InputEvent(Contract):
    """Base of every input event. ``event_id`` is unique per event (the producer's
    idempotency key); ``event_time`` is when it happened in the source system."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    event_time: AwareDatetime
    customer_id: Identifier

    @computed_once
    def event_timestamp(self) -> float:
        """``event_time`` as a POSIX timestamp (computed once: the pipeline reads it often)."""
        return self.event_time.timestamp()


def utc_from_timestamp(ts: float) -> datetime:
    """A timezone-aware UTC datetime from a POSIX timestamp."""
    return datetime.fromtimestamp(ts, tz=UTC)
