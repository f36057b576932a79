"""Features for the detectors, built from a customer's state before the event: plain dicts of
numbers, strings for categories and ``None`` for missing, as :mod:`detectors` expects.

>>> from streams.exposure import CustomerState
>>> state = CustomerState("C1")
>>> for i in range(4):
...     _ = state.place_order(f"SO-{i}", f"e{i}", amount=100_00, at=i * DAY)
>>> features = order_features(state, amount=1_000_00, at=4 * DAY, payment_terms_days=30,
...                           ship_to_country="DE", max_discount=0.0, hour=10.0, weekday=2.0)
>>> features["amount_ratio"], features["orders_last_day"], features["first_orders"]
(10.0, 1.0, 0.0)
"""

from __future__ import annotations

import math
from typing import Any

from streams.exposure import DAY, CustomerState

#: Days since the last order reported for a customer without one.
NO_PREVIOUS_ORDER_DAYS = 365.0


def order_features(state: CustomerState, *, amount: int, at: float, payment_terms_days: int, ship_to_country: str,
                   max_discount: float, hour: float, weekday: float) -> dict[str, float]:
    """What makes an order unusual for this customer (numbers only, for the anomaly detector).
    ``amount`` in base cents, ``at`` the order's event time; ``state`` is before the order."""
    profile = state.profile
    typical = state.order_value_total / state.order_count if state.order_count else 0
    recent = [o.placed_at for o in state.orders.values() if o.amount and at - DAY <= o.placed_at <= at]
    usual_terms = profile.payment_terms_days if profile else 0
    return {
        "amount_ratio": round(amount / typical, 4) if typical > 0 else 1.0,
        "log_amount": math.log1p(amount / 100),
        "max_discount": max_discount,
        "terms_ratio": payment_terms_days / usual_terms if usual_terms else 1.0,
        "hour": hour,
        "weekday": weekday,
        "days_since_last_order": (at - state.last_order_at) / DAY if state.last_order_at is not None
        else NO_PREVIOUS_ORDER_DAYS,
        "new_ship_to_country": 1.0 if profile is not None and ship_to_country != profile.country else 0.0,
        "orders_last_hour": float(sum(1 for t in recent if t >= at - DAY / 24)),
        "orders_last_day": float(len(recent)),
        "first_orders": 1.0 if state.order_count < 3 else 0.0,
    }


def credit_features(state: CustomerState, at: float, order_amount: int | None = None) -> dict[str, Any]:
    """What the late-payment model looks at for a customer at ``at`` (``None`` where unknown)."""
    profile = state.profile
    paid = state.paid_on_time + state.paid_late
    receivables = state.receivables()
    overdue_amount, days_past_due = state.overdue(at)
    exposure = state.exposure()
    typical = state.order_value_total / state.order_count if state.order_count else 0
    return {
        "late_share": state.paid_late / paid if paid else None,
        "avg_days_late": state.days_late_total / state.paid_late if state.paid_late else 0.0,
        "invoices_paid": float(paid),
        "written_off": float(state.written_off_count),
        "days_past_due": float(days_past_due),
        "overdue_share": overdue_amount / receivables if receivables else 0.0,
        "utilization": exposure / profile.credit_limit if profile and profile.credit_limit else None,
        "tenure_days": (at - state.first_order_at) / DAY if state.first_order_at is not None else 0.0,
        "order_size_ratio": order_amount / typical if order_amount is not None and typical > 0 else None,
        "risk_class": profile.risk_class if profile else None,
        "industry": profile.industry if profile else None,
        "country": profile.country if profile else None,
    }
