"""Order events from order entry: placed, amended, cancelled (topic ``orders``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from streams.contracts.common import Amount, Contract, CountryCode, CurrencyCode, Identifier, InputEvent, ShortText

#: Totals may differ from the sum of lines by rounding, not more.
TOTAL_TOLERANCE = 0.01


class OrderLine(Contract):
    """One line of an order; ``discount`` is a share of the list price (0.1 = 10 %)."""

    sku: Identifier
    quantity: Annotated[float, Field(gt=0, lt=1e9, allow_inf_nan=False)]
    unit_price: Amount
    discount: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0

    @property
    def net_amount(self) -> float:
        """Quantity x unit price after discount."""
        return self.quantity * self.unit_price * (1.0 - self.discount)


class _OrderBody(InputEvent):
    order_id: Identifier
    salesperson_id: Identifier
    channel: Literal["web", "edi", "phone", "field", "marketplace"]
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500)]
    total: Amount
    currency: CurrencyCode
    payment_terms_days: Annotated[int, Field(ge=0, le=365)]
    ship_to_country: CountryCode

    @model_validator(mode="after")
    def _total_matches_lines(self) -> _OrderBody:
        lines_total = sum(line.net_amount for line in self.lines)
        if abs(lines_total - self.total) > TOTAL_TOLERANCE + 1e-9 * self.total:
            raise ValueError(f"total {self.total:.2f} does not match the sum of its lines {lines_total:.2f}")
        return self


class OrderPlaced(_OrderBody):
    """A new order asks for credit.

    >>> OrderPlaced.model_validate(EXAMPLE).total
    1800.0
    """

    type: Literal["order.placed"] = "order.placed"


class OrderAmended(_OrderBody):
    """A new version of an existing order (all fields, not a delta); decided again."""

    type: Literal["order.amended"] = "order.amended"


class OrderCancelled(InputEvent):
    """The order will not be delivered; its open value leaves exposure."""

    type: Literal["order.cancelled"] = "order.cancelled"
    order_id: Identifier
    reason: ShortText = ""


OrderEvent = Annotated[OrderPlaced | OrderAmended | OrderCancelled, Field(discriminator="type")]

EXAMPLE = {
    "type": "order.placed",
    "schema_version": 1,
    "event_id": "evt-000123",
    "event_time": "2026-03-02T09:15:00Z",
    "order_id": "SO-100045",
    "customer_id": "C-0042",
    "salesperson_id": "S-07",
    "channel": "web",
    "lines": [{"sku": "SKU-1", "quantity": 20, "unit_price": 100.0, "discount": 0.1}],
    "total": 1800.0,
    "currency": "EUR",
    "payment_terms_days": 30,
    "ship_to_country": "DE",
}
