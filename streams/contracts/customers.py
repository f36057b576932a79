"""Customer master data from the CRM/ERP: created or updated (topic ``customers``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from streams.contracts.common import Amount, CountryCode, CurrencyCode, InputEvent, ShortText

RiskClass = Literal["A", "B", "C", "D", "E"]


class _CustomerBody(InputEvent):
    name: ShortText
    credit_limit: Amount
    currency: CurrencyCode
    risk_class: RiskClass
    country: CountryCode
    industry: Annotated[str, Field(min_length=1, max_length=64)]
    payment_terms_days: Annotated[int, Field(ge=0, le=365)]
    on_stop: bool = False


class CustomerCreated(_CustomerBody):
    """A new customer with its credit line.

    >>> CustomerCreated.model_validate(EXAMPLE).risk_class
    'B'
    """

    type: Literal["customer.created"] = "customer.created"


class CustomerUpdated(_CustomerBody):
    """The full current master record of a customer (not a delta)."""

    type: Literal["customer.updated"] = "customer.updated"


CustomerEvent = Annotated[CustomerCreated | CustomerUpdated, Field(discriminator="type")]

EXAMPLE = {
    "type": "customer.created",
    "schema_version": 1,
    "event_id": "evt-000001",
    "event_time": "2026-01-01T00:00:00Z",
    "customer_id": "C-0042",
    "name": "Nordwind Handel GmbH",
    "credit_limit": 50000.0,
    "currency": "EUR",
    "risk_class": "B",
    "country": "DE",
    "industry": "wholesale",
    "payment_terms_days": 30,
    "on_stop": False,
}
