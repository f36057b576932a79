"""Builders of valid input events for tests (JSON bytes as a producer would send them)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams.event_file import input_topic_of

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def at(days: float = 0.0) -> str:
    """An ISO event time ``days`` after T0."""
    return (T0 + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def _event(kind: str, customer: str, days: float, event_id: str | None, **body: Any) -> dict[str, Any]:
    return {"type": kind, "schema_version": 1, "event_id": event_id or f"t-{next(_ids)}",
            "event_time": at(days), "customer_id": customer, **body}


def customer(cid: str, limit: float = 10_000.0, days: float = -30, on_stop: bool = False,
             event_id: str | None = None, kind: str = "customer.created", currency: str = "EUR") -> dict[str, Any]:
    return _event(kind, cid, days, event_id, name=f"Customer {cid}", credit_limit=limit, currency=currency,
                  risk_class="B", country="DE", industry="wholesale", payment_terms_days=30, on_stop=on_stop)


def order(cid: str, order_id: str, amount: float, days: float = 0.0, event_id: str | None = None,
          kind: str = "order.placed", currency: str = "EUR") -> dict[str, Any]:
    return _event(kind, cid, days, event_id, order_id=order_id, salesperson_id="S-01", channel="web",
                  lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": amount, "discount": 0.0}], total=amount,
                  currency=currency, payment_terms_days=30, ship_to_country="DE")


def cancel(cid: str, order_id: str, days: float = 0.0, event_id: str | None = None) -> dict[str, Any]:
    return _event("order.cancelled", cid, days, event_id, order_id=order_id)


def invoice(cid: str, invoice_id: str, order_id: str | None, amount: float, days: float = 0.0,
            due_in_days: int = 30, event_id: str | None = None) -> dict[str, Any]:
    due = (T0 + timedelta(days=days + due_in_days)).date().isoformat()
    return _event("invoice.issued", cid, days, event_id, invoice_id=invoice_id, order_id=order_id,
                  amount=amount, currency="EUR", due_date=due)


def payment(cid: str, payment_id: str, invoice_id: str, amount: float, days: float = 0.0,
            event_id: str | None = None) -> dict[str, Any]:
    return _event("payment.received", cid, days, event_id, payment_id=payment_id, invoice_id=invoice_id,
                  amount=amount, currency="EUR")


def topic_of(event: dict[str, Any]) -> str:
    """The input topic an event belongs on."""
    return input_topic_of(event)


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def write_off(cid: str, invoice_id: str, days: float = 0.0, event_id: str | None = None) -> dict[str, Any]:
    return _event("invoice.written_off", cid, days, event_id, invoice_id=invoice_id, reason="insolvent")


def desk(kind: str, cid: str, days: float = 0.0, event_id: str | None = None, actor: str = "alice",
         comment: str = "Checked with the customer.", **body: Any) -> dict[str, Any]:
    """A risk-desk command: ``hold.release`` / ``hold.reject`` (``order_id=``), ``credit_limit.set``
    (``credit_limit=``, ``currency=``), ``on_stop.set`` (``on_stop=``)."""
    return _event(kind, cid, days, event_id, actor=actor, comment=comment, **body)
