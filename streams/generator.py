"""Synthetic sales traffic: customers of different sizes, limits and payment habits placing
orders that are invoiced and paid (or not), on a simulated business clock.

The simulation is open-loop (the ERP side does not wait for salesguard's decisions) and
deterministic for a seed. A small share of deliberately broken messages exercises the
dead-letter path; each carries the dead-letter code it should get.

>>> messages = list(SalesSimulator(seed=1, total_events=300))
>>> len(messages), messages[0].kind
(300, 'customer.created')
>>> sorted({m.topic for m in messages})
['customers', 'ledger', 'orders']
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

DAY = 86_400.0
COUNTRIES = ("DE", "FR", "NL", "IT", "ES", "PL", "SE", "GB", "US", "CH")
INDUSTRIES = ("wholesale", "retail", "construction", "manufacturing", "hospitality", "automotive", "healthcare")
CHANNELS = ("web", "edi", "phone", "field", "marketplace")
CURRENCY_BY_COUNTRY = {"GB": "GBP", "US": "USD", "CH": "CHF", "SE": "SEK", "PL": "PLN"}
#: Rough rates used only to size amounts in the customer's currency.
UNITS_PER_EUR = {"EUR": 1.0, "GBP": 0.85, "USD": 1.09, "CHF": 0.95, "SEK": 11.4, "PLN": 4.35}


@dataclass(frozen=True)
class GeneratedMessage:
    """A message to produce: logical topic, key, value. ``kind`` is the event type, or
    ``bad:<dead-letter code>`` for a deliberately broken message."""

    topic: str
    key: bytes
    value: bytes
    kind: str

    @property
    def is_valid(self) -> bool:
        """False for a deliberately broken message."""
        return not self.kind.startswith("bad:")

    @property
    def needs_decision(self) -> bool:
        """True for an order request (placed or amended)."""
        return self.kind in ("order.placed", "order.amended")


@dataclass
class SimCustomer:
    """A simulated customer: how much and how often it buys, and how it pays."""

    customer_id: str
    typical_order: float
    orders_per_day: float
    limit: float
    risk_class: str
    country: str
    currency: str
    industry: str
    terms: int
    habit: str  # prompt | slow | bad
    deteriorates_at: float | None
    on_stop: bool = False


class SalesSimulator:
    """Iterates :class:`GeneratedMessage` in event-time order.

    ``total_events``: stop after this many messages (None: run forever).
    ``customers``: how many customers (default: one per 40 events, at least 20).
    ``days``: simulated span the traffic is spread over.
    ``bad_rate``: share of deliberately broken messages.
    """

    def __init__(self, seed: int = 7, total_events: int | None = 5000, customers: int | None = None,
                 days: float = 240.0, bad_rate: float = 0.005, run_id: str = "r0",
                 start: datetime = datetime(2026, 1, 5, tzinfo=UTC)) -> None:
        self.rng = random.Random(seed)
        self.total_events = total_events
        self.customer_count = customers or max(20, (total_events or 8000) // 40)
        self.days = days
        self.bad_rate = bad_rate
        self.run_id = run_id
        self.start = start.timestamp()
        self._seq = itertools.count(1)
        self._queue: list[tuple[float, int, str, dict[str, Any]]] = []
        expected_orders = (total_events or 8000) / 3.4
        self._orders_per_customer_day = expected_orders / self.customer_count / days

    # --- public ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[GeneratedMessage]:
        customers = [self._new_customer(i) for i in range(1, self.customer_count + 1)]
        for customer in customers:
            self._schedule(self.start + self.rng.uniform(0, 60), "customer.created", customer=customer)
            self._schedule(self.start + 3600 + self.rng.expovariate(customer.orders_per_day) * DAY,
                           "order.placed", customer=customer)
        emitted = 0
        while self._queue and (self.total_events is None or emitted < self.total_events):
            at, _, kind, payload = heapq.heappop(self._queue)
            message = self._fire(at, kind, payload)
            if message is None:
                continue
            if message.kind != "customer.created" and self.rng.random() < self.bad_rate:
                message = self._break(message)
            emitted += 1
            yield message

    # --- customers ---------------------------------------------------------------------------

    def _new_customer(self, index: int) -> SimCustomer:
        rng = self.rng
        country = rng.choice(COUNTRIES)
        typical = math.exp(rng.gauss(7.6, 0.9))  # ~2,000 EUR, from a few hundred to tens of thousands
        per_day = self._orders_per_customer_day * math.exp(rng.gauss(0, 0.6))
        terms = rng.choice((14, 30, 30, 30, 45, 60))
        # A limit sized on expected exposure (orders over the payment cycle), some tight on purpose.
        cycle_volume = typical * per_day * (terms + 20)
        tightness = rng.choice((0.8, 1.5, 2.0, 2.5, 3.0, 4.0))
        habit = rng.choices(("prompt", "slow", "bad"), weights=(76, 19, 5))[0]
        risk_class = {"prompt": "AB", "slow": "BC", "bad": "DE"}[habit][rng.random() < 0.3]
        deteriorates = self.start + rng.uniform(0.3, 0.7) * self.days * DAY if rng.random() < 0.06 else None
        currency = CURRENCY_BY_COUNTRY.get(country, "EUR")
        return SimCustomer(
            customer_id=f"C-{index:05d}", typical_order=typical, orders_per_day=per_day,
            limit=round(max(1000.0, cycle_volume * tightness), -2), risk_class=risk_class, country=country,
            currency=currency, industry=rng.choice(INDUSTRIES), terms=terms, habit=habit,
            deteriorates_at=deteriorates, on_stop=rng.random() < 0.02,
        )

    # --- the event loop ----------------------------------------------------------------------

    def _schedule(self, at: float, kind: str, **payload: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), kind, payload))

    def _fire(self, at: float, kind: str, p: dict[str, Any]) -> GeneratedMessage | None:
        customer: SimCustomer = p["customer"]
        if kind == "customer.created":
            return self._customer_event(at, kind, customer)
        if kind == "order.placed":
            self._schedule(at + self.rng.expovariate(customer.orders_per_day) * DAY, "order.placed", customer=customer)
            if self.rng.random() < 0.01:
                self._schedule(at + 60, "customer.updated", customer=customer)
            return self._place(at, customer)
        if kind == "customer.updated":
            customer.limit = round(customer.limit * self.rng.choice((0.7, 1.2, 1.5)), -2)
            customer.on_stop = self.rng.random() < 0.1
            return self._customer_event(at, kind, customer)
        if kind == "order.amended":
            return self._amend(at, customer, p)
        if kind == "order.cancelled":
            return self._emit("orders", customer, at, kind, order_id=p["order_id"], reason="customer request")
        if kind == "invoice.issued":
            return self._invoice(at, customer, p)
        if kind == "payment.received":
            return self._emit("ledger", customer, at, kind, payment_id=f"PAY-{self.run_id}-{next(self._seq)}",
                              invoice_id=p["invoice_id"], amount=p["amount"], currency=customer.currency)
        if kind == "credit_note.issued":
            return self._emit("ledger", customer, at, kind, credit_note_id=f"CN-{self.run_id}-{next(self._seq)}",
                              invoice_id=p["invoice_id"], amount=p["amount"], currency=customer.currency)
        if kind == "invoice.written_off":
            return self._emit("ledger", customer, at, kind, invoice_id=p["invoice_id"], reason="uncollectable")
        raise ValueError(f"unknown simulated event {kind}")  # pragma: no cover

    def _customer_event(self, at: float, kind: str, c: SimCustomer) -> GeneratedMessage:
        return self._emit(
            "customers", c, at, kind, name=f"Customer {c.customer_id[2:]} {c.industry.title()}",
            credit_limit=c.limit * UNITS_PER_EUR[c.currency], currency=c.currency, risk_class=c.risk_class,
            country=c.country, industry=c.industry, payment_terms_days=c.terms, on_stop=c.on_stop,
        )

    def _lines(self, customer: SimCustomer, scale: float = 1.0) -> tuple[list[dict[str, Any]], float]:
        rng = self.rng
        target = customer.typical_order * math.exp(rng.gauss(0, 0.5)) * scale * UNITS_PER_EUR[customer.currency]
        lines, total = [], 0.0
        for index in range(rng.choice((1, 1, 2, 3, 5))):
            quantity = rng.randint(1, 50)
            unit_price = round(max(0.5, target / quantity / (index + 1.5)), 2)
            discount = rng.choice((0.0, 0.0, 0.05, 0.1, 0.15))
            lines.append({"sku": f"SKU-{rng.randint(1, 400):04d}", "quantity": quantity,
                          "unit_price": unit_price, "discount": discount})
            total += quantity * unit_price * (1 - discount)
        return lines, round(total, 2)

    def _place(self, at: float, customer: SimCustomer) -> GeneratedMessage:
        rng = self.rng
        order_id = f"SO-{self.run_id}-{next(self._seq)}"
        lines, total = self._lines(customer, scale=8.0 if rng.random() < 0.01 else 1.0)
        roll = rng.random()
        if roll < 0.03:
            self._schedule(at + rng.uniform(0.1, 2) * DAY, "order.cancelled", customer=customer, order_id=order_id)
        elif roll < 0.05:
            self._schedule(at + rng.uniform(0.1, 1) * DAY, "order.amended", customer=customer, order_id=order_id,
                           salesperson=f"S-{rng.randint(1, 25):02d}")
        else:
            self._schedule(at + rng.uniform(1, 7) * DAY, "invoice.issued", customer=customer, order_id=order_id,
                           amount=total)
        return self._emit("orders", customer, at, "order.placed", **self._order_body(order_id, customer, lines, total))

    def _amend(self, at: float, customer: SimCustomer, p: dict[str, Any]) -> GeneratedMessage:
        lines, total = self._lines(customer, scale=self.rng.choice((0.8, 1.3, 2.0)))
        self._schedule(at + self.rng.uniform(1, 7) * DAY, "invoice.issued", customer=customer,
                       order_id=p["order_id"], amount=total)
        return self._emit("orders", customer, at, "order.amended",
                          **self._order_body(p["order_id"], customer, lines, total, p["salesperson"]))

    def _order_body(self, order_id: str, c: SimCustomer, lines: list[dict[str, Any]], total: float,
                    salesperson: str | None = None) -> dict[str, Any]:
        return {
            "order_id": order_id, "salesperson_id": salesperson or f"S-{self.rng.randint(1, 25):02d}",
            "channel": self.rng.choice(CHANNELS), "lines": lines, "total": total, "currency": c.currency,
            "payment_terms_days": c.terms, "ship_to_country": c.country,
        }

    def _invoice(self, at: float, customer: SimCustomer, p: dict[str, Any]) -> GeneratedMessage:
        rng = self.rng
        invoice_id = f"INV-{self.run_id}-{next(self._seq)}"
        amount = p["amount"]
        due = at + customer.terms * DAY
        habit = customer.habit
        if customer.deteriorates_at is not None and at > customer.deteriorates_at:
            habit = "bad"
        if rng.random() < 0.05:
            credit = round(amount * rng.uniform(0.05, 0.3), 2)
            self._schedule(at + rng.uniform(2, 10) * DAY, "credit_note.issued", customer=customer,
                           invoice_id=invoice_id, amount=credit)
            amount = round(amount - credit, 2)
        if habit == "bad" and rng.random() < 0.25:
            self._schedule(due + 120 * DAY, "invoice.written_off", customer=customer, invoice_id=invoice_id)
        else:
            late = {"prompt": rng.gauss(-2, 3), "slow": rng.uniform(3, 25), "bad": rng.uniform(15, 60)}[habit]
            paid_at = max(at + DAY, due + late * DAY)
            if rng.random() < 0.1 and amount > 2:
                first = round(amount / 2, 2)
                self._schedule(paid_at - 5 * DAY, "payment.received", customer=customer, invoice_id=invoice_id,
                               amount=first)
                amount = round(amount - first, 2)
            self._schedule(paid_at, "payment.received", customer=customer, invoice_id=invoice_id, amount=amount)
        due_date = datetime.fromtimestamp(due, tz=UTC).date().isoformat()
        return self._emit("ledger", customer, at, "invoice.issued", invoice_id=invoice_id, order_id=p["order_id"],
                          amount=p["amount"], currency=customer.currency, due_date=due_date)

    def _emit(self, topic: str, customer: SimCustomer, at: float, kind: str, **body: Any) -> GeneratedMessage:
        event = {
            "type": kind, "schema_version": 1, "event_id": f"E-{self.run_id}-{next(self._seq)}",
            "event_time": datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z"),
            "customer_id": customer.customer_id, **body,
        }
        return GeneratedMessage(topic, customer.customer_id.encode(), orjson.dumps(event), kind)

    # --- broken messages -------------------------------------------------------------------

    def _break(self, message: GeneratedMessage) -> GeneratedMessage:
        """A corrupted copy of ``message`` with the dead-letter code it must get. The valid
        original is not sent, and its follow-up events still are (as real data would)."""
        event = orjson.loads(message.value)
        breakage = self.rng.choice(("not_json", "invalid_event", "unknown_currency", "key_mismatch"))
        if breakage == "not_json":
            truncated = message.value[: len(message.value) // 2]
            return GeneratedMessage(message.topic, message.key, truncated, "bad:not_json")
        if breakage == "unknown_currency" and "currency" in event:
            event["currency"] = "XXX"
            return GeneratedMessage(message.topic, message.key, orjson.dumps(event), "bad:unknown_currency")
        if breakage == "key_mismatch":
            return GeneratedMessage(message.topic, b"C-WRONG", message.value, "bad:key_mismatch")
        event.pop("event_time")
        return GeneratedMessage(message.topic, message.key, orjson.dumps(event), "bad:invalid_event")

