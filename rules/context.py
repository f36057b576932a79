"""The facts a rule may look at when one order is decided."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecisionContext:
    """What is known about an order and its customer at the moment it is decided.

    Amounts are in the base currency. ``exposure`` is the customer's exposure *before* this
    order (open approved orders + open receivables); for an amendment it excludes the order's
    previous amount. ``credit_limit`` is ``None`` when the customer has no master data yet.
    Scores are ``None`` while their model is still warming up; factors are the features behind
    them, strongest first.
    """

    order_amount: float
    exposure: float
    credit_limit: float | None
    customer_known: bool = True
    on_stop: bool = False
    risk_class: str | None = None
    overdue_amount: float = 0.0
    days_past_due: int = 0
    anomaly_score: float | None = None
    anomaly_factors: tuple[tuple[str, float], ...] = ()
    late_payment_probability: float | None = None
    late_payment_factors: tuple[tuple[str, float], ...] = ()

    @property
    def exposure_after(self) -> float:
        """Exposure if the order is accepted."""
        return self.exposure + self.order_amount
