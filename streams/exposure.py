"""One customer's live credit state, and how each input event changes it — idempotently.

Exposure = open orders (accepted, not yet invoiced) + open receivables. Every change is keyed
by the natural id it concerns (order, invoice, payment, credit note) and by ``event_id``, so a
redelivered or duplicated event changes nothing the second time:

>>> state = CustomerState("C1")
>>> state.place_order("SO-1", "e1", amount=1000, at=0.0)
True
>>> state.place_order("SO-1", "e1", amount=1000, at=0.0)   # redelivered
False
>>> state.issue_invoice("INV-1", "e2", order_id="SO-1", amount=600, due=86400.0, at=0.0)
True
>>> state.apply_payment("P-1", invoice_id="INV-1", amount=100, at=3600.0)
True
>>> state.open_orders(), state.receivables(), state.exposure()
(400, 500, 900)

Amounts are integer cents of the base currency; times are POSIX seconds of *event* time, so
overdue status follows the business clock of the events, not the worker's wall clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Literal

import orjson

DAY = 86_400.0

OrderStatus = Literal["open", "held", "rejected", "cancelled"]
CreditKind = Literal["payment", "credit_note"]


@dataclass(slots=True)
class Profile:
    """Credit master data of a customer, as last set by the CRM/ERP (or the desk)."""

    name: str
    credit_limit: int
    risk_class: str
    country: str
    industry: str
    payment_terms_days: int
    on_stop: bool
    updated_at: float


@dataclass(slots=True)
class OrderRecord:
    """An order as far as credit is concerned. Only ``open`` orders count in exposure, and
    only for the part not yet invoiced."""

    amount: int
    uninvoiced: int
    status: OrderStatus
    placed_at: float
    event_ids: list[str] = field(default_factory=list)
    closed_at: float | None = None
    salesperson_id: str = ""


@dataclass(slots=True)
class InvoiceRecord:
    """A receivable: what was invoiced, what is still owed, when it is due."""

    amount: int
    outstanding: int
    due: float
    issued_at: float
    order_id: str | None = None
    applied_ids: list[str] = field(default_factory=list)
    written_off: int = 0
    closed_at: float | None = None
    #: Credit features when it was issued, until its outcome is learned (then ``None``).
    features: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CreditOutcome:
    """An invoice whose outcome is known: its credit features at issue and whether it was
    paid (or settled) more than the lateness threshold late, or written off."""

    invoice_id: str
    features: dict[str, Any]
    late: bool
    days_late: float


@dataclass(slots=True)
class PendingCredit:
    """A payment or credit note that arrived before its invoice; applied when it comes."""

    invoice_id: str
    amount: int
    kind: CreditKind
    at: float


@dataclass(slots=True)
class CustomerState:
    """Everything salesguard knows about one customer's credit."""

    customer_id: str
    profile: Profile | None = None
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    invoices: dict[str, InvoiceRecord] = field(default_factory=dict)
    pending_credits: dict[str, PendingCredit] = field(default_factory=dict)
    profile_event_ids: list[str] = field(default_factory=list)
    paid_on_time: int = 0
    paid_late: int = 0
    days_late_total: float = 0.0
    written_off_count: int = 0
    unapplied_cash: int = 0
    order_count: int = 0
    order_value_total: int = 0
    first_order_at: float | None = None
    last_order_at: float | None = None
    last_event_time: float = 0.0
    #: Latest event time applied from the ``orders`` topic and from the ``ledger`` topic: they
    #: are consumed independently, so one can run weeks (of event time) ahead in a backlog.
    orders_time: float = 0.0
    ledger_time: float = 0.0
    #: The cutoff of the last pass of :meth:`forget_closed`.
    forgotten_before: float = 0.0
    events_applied: int = 0

    # --- reading ---------------------------------------------------------------------------

    def open_orders(self) -> int:
        """Value of accepted orders not yet invoiced."""
        return sum(o.uninvoiced for o in self.orders.values() if o.status == "open")

    def receivables(self) -> int:
        """What is invoiced and still owed."""
        return sum(i.outstanding for i in self.invoices.values())

    def exposure(self) -> int:
        """Open orders + open receivables."""
        return self.open_orders() + self.receivables()

    def overdue(self, as_of: float) -> tuple[int, int]:
        """``(overdue amount, days past due of the oldest overdue invoice)`` at ``as_of``."""
        amount, oldest_due = 0, math.inf
        for invoice in self.invoices.values():
            if invoice.outstanding > 0 and invoice.due < as_of:
                amount += invoice.outstanding
                oldest_due = min(oldest_due, invoice.due)
        days = int((as_of - oldest_due) // DAY) if amount else 0
        return amount, days

    def invoiced_for(self, order_id: str) -> tuple[int, int]:
        """``(invoiced, still outstanding)`` on invoices that name ``order_id``."""
        invoiced = outstanding = 0
        for invoice in self.invoices.values():
            if invoice.order_id == order_id:
                invoiced += invoice.amount
                outstanding += invoice.outstanding
        return invoiced, outstanding

    def held_orders(self) -> dict[str, OrderRecord]:
        """Orders waiting on the desk."""
        return {oid: o for oid, o in self.orders.items() if o.status == "held"}

    # --- master data -----------------------------------------------------------------------

    def set_profile(self, event_id: str, profile: Profile) -> bool:
        """Take the newer master record; an older or repeated one is ignored."""
        if event_id in self.profile_event_ids:
            return False
        self.profile_event_ids = (self.profile_event_ids + [event_id])[-20:]
        if self.profile is not None and profile.updated_at < self.profile.updated_at:
            return False
        self.profile = profile
        return True

    # --- orders ----------------------------------------------------------------------------

    def place_order(self, order_id: str, event_id: str, amount: int, at: float,
                    status: OrderStatus = "open", salesperson_id: str = "") -> bool:
        """Record a decided new order. An ``open`` (accepted) order becomes exposure, less what
        was already invoiced for it when its invoice came first; a ``held`` or ``rejected`` one
        does not. Returns False when the order is already known."""
        existing = self.orders.get(order_id)
        if existing is not None:
            if event_id in existing.event_ids or existing.status != "cancelled" or existing.amount:
                return False
            # Cancelled before it was placed: remember the order, keep it out of exposure.
            existing.amount, existing.placed_at, existing.salesperson_id = amount, at, salesperson_id
            existing.event_ids.append(event_id)
            return True
        invoiced, _ = self.invoiced_for(order_id)
        self.orders[order_id] = OrderRecord(
            amount=amount, uninvoiced=max(0, amount - invoiced), status=status, placed_at=at, event_ids=[event_id],
            closed_at=at if status == "rejected" else None, salesperson_id=salesperson_id,
        )
        self.order_count += 1
        self.order_value_total += amount
        self.first_order_at = at if self.first_order_at is None else min(self.first_order_at, at)
        self.last_order_at = at if self.last_order_at is None else max(self.last_order_at, at)
        return True

    def amend_order(self, order_id: str, event_id: str, amount: int, at: float,
                    status: OrderStatus = "open", salesperson_id: str = "") -> bool:
        """Replace an order's amount with its amended version, as decided again."""
        order = self.orders[order_id]
        if event_id in order.event_ids:
            return False
        invoiced = order.amount - order.uninvoiced
        self.order_value_total += amount - order.amount
        order.amount, order.uninvoiced = amount, max(0, amount - invoiced)
        order.status, order.salesperson_id = status, salesperson_id or order.salesperson_id
        order.closed_at = at if order.status == "rejected" else None
        order.event_ids.append(event_id)
        return True

    def cancel_order(self, order_id: str, event_id: str, at: float) -> bool:
        """The order will not ship: it leaves exposure (and the holds queue). A cancel for an
        order not seen yet leaves a tombstone so the late ``placed`` adds no exposure."""
        order = self.orders.get(order_id)
        if order is None:
            self.orders[order_id] = OrderRecord(0, 0, "cancelled", at, [event_id], closed_at=at)
            return True
        if event_id in order.event_ids or order.status == "cancelled":
            return False
        order.status, order.closed_at = "cancelled", at
        order.event_ids.append(event_id)
        return True

    # --- the desk ----------------------------------------------------------------------------

    def resolve_hold(self, order_id: str, command_id: str, release: bool, at: float) -> str | None:
        """Release a held order (it becomes open exposure) or reject it (it never does).
        Returns None when done, else why nothing changed (not held, already applied).

        >>> state = CustomerState("C1")
        >>> state.place_order("SO-1", "e1", amount=500, at=0.0, status="held")
        True
        >>> state.resolve_hold("SO-1", "cmd-1", release=True, at=60.0), state.exposure()
        (None, 500)
        >>> state.resolve_hold("SO-1", "cmd-2", release=True, at=90.0)
        'order SO-1 is open, not held'
        """
        order = self.orders.get(order_id)
        if order is None:
            return f"order {order_id} is not known for customer {self.customer_id}"
        if command_id in order.event_ids:
            return "command already applied"
        if order.status != "held":
            return f"order {order_id} is {order.status}, not held"
        order.status = "open" if release else "rejected"
        order.closed_at = None if release and order.uninvoiced else at
        order.event_ids.append(command_id)
        return None

    def set_limit_or_stop(self, command_id: str, at: float, credit_limit: int | None = None,
                          on_stop: bool | None = None) -> str | None:
        """The desk sets the credit limit or the on-stop flag; it counts as master data as of
        ``at`` (an older CRM record arriving later does not undo it). Returns None when done,
        else why nothing changed."""
        if self.profile is None:
            return f"customer {self.customer_id} has no credit profile yet"
        if command_id in self.profile_event_ids:
            return "command already applied"
        self.profile_event_ids = (self.profile_event_ids + [command_id])[-20:]
        if credit_limit is not None:
            self.profile.credit_limit = credit_limit
        if on_stop is not None:
            self.profile.on_stop = on_stop
        self.profile.updated_at = max(self.profile.updated_at, at)
        return None

    # --- receivables -----------------------------------------------------------------------

    def issue_invoice(self, invoice_id: str, event_id: str, order_id: str | None, amount: int,
                      due: float, at: float, features: dict[str, Any] | None = None) -> bool:
        """A new receivable; the invoiced part of its order stops counting as open order.
        ``features`` (credit features at issue) are kept until the outcome is learned."""
        if invoice_id in self.invoices:
            return False
        invoice = InvoiceRecord(amount=amount, outstanding=amount, due=due, issued_at=at,
                                order_id=order_id, applied_ids=[event_id], features=features)
        self.invoices[invoice_id] = invoice
        order = self.orders.get(order_id) if order_id else None
        if order is not None:
            order.uninvoiced = max(0, order.uninvoiced - amount)
            if order.uninvoiced == 0 and order.status == "open":
                order.closed_at = at
        for credit_id, credit in sorted(self.pending_credits.items(), key=lambda kv: kv[1].at):
            if credit.invoice_id == invoice_id:
                del self.pending_credits[credit_id]
                self._apply_credit(invoice_id, credit_id, credit.amount, credit.kind, credit.at)
        return True

    def apply_payment(self, payment_id: str, invoice_id: str, amount: int, at: float) -> bool:
        """Cash against an invoice. Before its invoice arrives it waits as a pending credit."""
        return self._credit(invoice_id, payment_id, amount, "payment", at)

    def apply_credit_note(self, credit_note_id: str, invoice_id: str, amount: int, at: float) -> bool:
        """A credit note reduces what is owed; it is not a payment (no payment-history effect)."""
        return self._credit(invoice_id, credit_note_id, amount, "credit_note", at)

    def write_off(self, invoice_id: str, event_id: str, at: float) -> bool:
        """What is still owed on the invoice is a loss: out of receivables, into history."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None or event_id in invoice.applied_ids or invoice.outstanding == 0:
            return False
        invoice.applied_ids.append(event_id)
        invoice.written_off += invoice.outstanding
        invoice.outstanding, invoice.closed_at = 0, at
        self.written_off_count += 1
        return True

    def _credit(self, invoice_id: str, credit_id: str, amount: int, kind: CreditKind, at: float) -> bool:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            if credit_id in self.pending_credits:
                return False
            self.pending_credits[credit_id] = PendingCredit(invoice_id, amount, kind, at)
            return True
        if credit_id in invoice.applied_ids:
            return False
        self._apply_credit(invoice_id, credit_id, amount, kind, at)
        return True

    def _apply_credit(self, invoice_id: str, credit_id: str, amount: int, kind: CreditKind, at: float) -> None:
        invoice = self.invoices[invoice_id]
        invoice.applied_ids.append(credit_id)
        applied = min(amount, invoice.outstanding)
        self.unapplied_cash += amount - applied
        was_open = invoice.outstanding > 0
        invoice.outstanding -= applied
        if was_open and invoice.outstanding == 0:
            invoice.closed_at = at
            if kind == "payment":
                days_late = (at - invoice.due) / DAY
                if days_late > 0:
                    self.paid_late += 1
                    self.days_late_total += days_late
                else:
                    self.paid_on_time += 1

    # --- outcomes to learn from ------------------------------------------------------------

    def credit_outcomes(self, as_of: float, late_after_days: float) -> list[CreditOutcome]:
        """Invoices whose outcome became known by ``as_of`` and was not yet taken: settled
        (late when settled more than ``late_after_days`` after due), written off (late), or
        still unpaid more than ``late_after_days`` after due (late, without waiting for the
        payment). Each is returned once: its features are dropped when taken.

        >>> state = CustomerState("C1")
        >>> _ = state.issue_invoice("I1", "e1", None, 100, due=0.0, at=0.0, features={"x": 1.0})
        >>> state.credit_outcomes(as_of=10 * DAY, late_after_days=30)
        []
        >>> [(o.invoice_id, o.late, o.days_late) for o in state.credit_outcomes(31 * DAY, 30)]
        [('I1', True, 31.0)]
        >>> state.credit_outcomes(40 * DAY, 30)
        []
        """
        outcomes = []
        for invoice_id, invoice in self.invoices.items():
            if invoice.features is None:
                continue
            if invoice.outstanding == 0 and invoice.closed_at is not None:
                days_late = (invoice.closed_at - invoice.due) / DAY
                late = invoice.written_off > 0 or days_late > late_after_days
            elif as_of - invoice.due > late_after_days * DAY:
                days_late, late = (as_of - invoice.due) / DAY, True
            else:
                continue
            outcomes.append(CreditOutcome(invoice_id, invoice.features, late, round(days_late, 3)))
            invoice.features = None
        return outcomes

    # --- housekeeping ----------------------------------------------------------------------

    def retention_clock(self) -> float:
        """The event time both topics that refer to orders and invoices have reached for this
        customer (0 until both have events): closed items older than the retention are forgotten
        by this clock, so an amendment or payment still unread on the lagging topic finds them.

        >>> state = CustomerState("C1", orders_time=50.0, ledger_time=90.0)
        >>> state.retention_clock()
        50.0
        """
        return min(self.orders_time, self.ledger_time)

    def forget_closed(self, before: float) -> int:
        """Drop orders and invoices closed before ``before``, and payments or credit notes still
        waiting for an invoice since then; returns how many. A duplicate of an event older than
        the retention can then no longer be recognised (documented limit).

        ``before`` is rounded down to a whole day and a pass (which scans every item) runs once
        per day: an item may be kept a day longer, and where batches end does not matter."""
        before -= before % DAY
        if before <= self.forgotten_before:
            return 0
        self.forgotten_before = before
        stale_orders = [k for k, o in self.orders.items() if o.closed_at is not None and o.closed_at < before]
        stale_invoices = [k for k, i in self.invoices.items() if i.closed_at is not None and i.closed_at < before]
        stale_credits = [k for k, c in self.pending_credits.items() if c.at < before]
        for key in stale_orders:
            del self.orders[key]
        for key in stale_invoices:
            del self.invoices[key]
        for key in stale_credits:
            del self.pending_credits[key]
        return len(stale_orders) + len(stale_invoices) + len(stale_credits)

    # --- serialization (Faust changelog) ---------------------------------------------------

    def to_json(self) -> bytes:
        """The state as stored and changelogged: a JSON array of :data:`STATE_FORMAT` and the
        state's fields in declaration order, the profile and the records likewise as arrays of
        their fields (a third of the JSON object's size, which repeats every field's name).

        >>> CustomerState("C1", events_applied=1).to_json()
        b'[1,"C1",null,{},{},{},[],0,0,0.0,0,0,0,0,null,null,0.0,0.0,0.0,0.0,1]'
        """
        return orjson.dumps((STATE_FORMAT, *_fields_of(self)), default=_fields_of,
                            option=orjson.OPT_PASSTHROUGH_DATACLASS)

    @classmethod
    def from_json(cls, data: bytes) -> CustomerState:
        """Inverse of :meth:`to_json` (also reads the JSON object of :meth:`to_dict`, as states
        were stored before).

        >>> state = CustomerState("C1")
        >>> _ = state.place_order("SO-1", "e1", amount=1000, at=0.0)
        >>> CustomerState.from_json(state.to_json()) == state == CustomerState.from_json(orjson.dumps(state))
        True
        """
        values = orjson.loads(data)
        if isinstance(values, dict):
            return cls.from_dict(values)
        version, customer_id, profile, orders, invoices, pending_credits, *rest = values
        if version != STATE_FORMAT:
            raise ValueError(f"customer state stored in format {version!r}; this version reads {STATE_FORMAT}")
        return cls(customer_id, None if profile is None else Profile(*profile),
                   {k: OrderRecord(*v) for k, v in orders.items()},
                   {k: InvoiceRecord(*v) for k, v in invoices.items()},
                   {k: PendingCredit(*v) for k, v in pending_credits.items()}, *rest)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return orjson.loads(orjson.dumps(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        profile = data.pop("profile")
        state = cls(**{k: v for k, v in data.items() if k not in ("orders", "invoices", "pending_credits")})
        state.profile = Profile(**profile) if profile else None
        state.orders = {k: OrderRecord(**v) for k, v in data["orders"].items()}
        state.invoices = {k: InvoiceRecord(**v) for k, v in data["invoices"].items()}
        state.pending_credits = {k: PendingCredit(**v) for k, v in data["pending_credits"].items()}
        return state


#: Version of the stored form of a state (:meth:`CustomerState.to_json`); changing a stored
#: dataclass's fields changes it.
STATE_FORMAT = 1

_FIELD_GETTERS = {cls: attrgetter(*(f.name for f in fields(cls)))
                  for cls in (CustomerState, Profile, OrderRecord, InvoiceRecord, PendingCredit)}


def _fields_of(record: Any) -> tuple[Any, ...]:
    """A stored dataclass's field values in declaration order."""
    return _FIELD_GETTERS[type(record)](record)
