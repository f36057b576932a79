"""A customer's risk snapshot: what the desk and other services read (mirrored to Redis)."""

from __future__ import annotations

from typing import Any

from streams.contracts.common import utc_from_timestamp
from streams.exposure import CustomerState
from streams.money import units


def risk_snapshot(state: CustomerState, as_of: float, base_currency: str) -> dict[str, Any]:
    """Limit, exposure and its parts, utilization, overdue and payment history at ``as_of``.

    >>> from streams.exposure import CustomerState
    >>> risk_snapshot(CustomerState("C1"), 0.0, "EUR")["exposure"]
    0.0
    """
    open_orders, receivables = state.open_orders(), state.receivables()
    exposure = open_orders + receivables
    overdue_amount, days_past_due = state.overdue(as_of)
    profile = state.profile
    limit = profile.credit_limit if profile else None
    paid = state.paid_on_time + state.paid_late
    return {
        "customer_id": state.customer_id,
        "name": profile.name if profile else None,
        "base_currency": base_currency,
        "credit_limit": units(limit) if limit is not None else None,
        "risk_class": profile.risk_class if profile else None,
        "on_stop": profile.on_stop if profile else False,
        "exposure": units(exposure),
        "open_orders": units(open_orders),
        "receivables": units(receivables),
        "utilization": round(exposure / limit, 4) if limit else None,
        "overdue_amount": units(overdue_amount),
        "days_past_due": days_past_due,
        "open_holds": len(state.held_orders()),
        "invoices_paid_on_time": state.paid_on_time,
        "invoices_paid_late": state.paid_late,
        "avg_days_late": round(state.days_late_total / state.paid_late, 2) if state.paid_late else 0.0,
        "late_share": round(state.paid_late / paid, 4) if paid else None,
        "written_off": state.written_off_count,
        "orders": state.order_count,
        "events_applied": state.events_applied,
        "last_event_at": utc_from_timestamp(state.last_event_time).isoformat() if state.last_event_time else None,
        "as_of": utc_from_timestamp(as_of).isoformat(),
    }
