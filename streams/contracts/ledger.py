"""Receivables events from the ERP: invoice, payment, credit note, write-off (topic ``ledger``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from streams.contracts.common import CurrencyCode, Identifier, InputEvent, PositiveAmount, ShortText


class InvoiceIssued(InputEvent):
    """An invoice for (part of) an order: the order's open value becomes a receivable.

    >>> InvoiceIssued.model_validate(EXAMPLE).due_date.isoformat()
    '2026-04-05'
    """

    type: Literal["invoice.issued"] = "invoice.issued"
    invoice_id: Identifier
    order_id: Identifier | None = None
    amount: PositiveAmount
    currency: CurrencyCode
    due_date: date

    @model_validator(mode="after")
    def _due_not_before_issue(self) -> InvoiceIssued:
        if self.due_date < self.event_time.date():
            raise ValueError(f"due_date {self.due_date} is before the invoice date {self.event_time.date()}")
        return self


class PaymentReceived(InputEvent):
    """Cash applied to an invoice; ``event_time`` is when it was received."""

    type: Literal["payment.received"] = "payment.received"
    payment_id: Identifier
    invoice_id: Identifier
    amount: PositiveAmount
    currency: CurrencyCode


class CreditNoteIssued(InputEvent):
    """A credit note reduces what is owed on an invoice (returns, price corrections)."""

    type: Literal["credit_note.issued"] = "credit_note.issued"
    credit_note_id: Identifier
    invoice_id: Identifier
    amount: PositiveAmount
    currency: CurrencyCode


class InvoiceWrittenOff(InputEvent):
    """What is still owed on an invoice is written off as a loss."""

    type: Literal["invoice.written_off"] = "invoice.written_off"
    invoice_id: Identifier
    reason: ShortText = ""


LedgerEvent = Annotated[
    InvoiceIssued | PaymentReceived | CreditNoteIssued | InvoiceWrittenOff, Field(discriminator="type")
]

EXAMPLE = {
    "type": "invoice.issued",
    "schema_version": 1,
    "event_id": "evt-000200",
    "event_time": "2026-03-06T12:00:00Z",
    "customer_id": "C-0042",
    "invoice_id": "INV-9001",
    "order_id": "SO-100045",
    "amount": 1800.0,
    "currency": "EUR",
    "due_date": "2026-04-05",
}

__all__ = ["CreditNoteIssued", "InvoiceIssued", "InvoiceWrittenOff", "LedgerEvent", "PaymentReceived"]
