"""The facts a rule may look at when one order is decided: every field of
:class:`DecisionContext` is a variable of the rulebook's conditions (CEL), with the CEL type
given by its Python type.

No field is ever null, so a condition never fails on a missing value: a customer without
master data has ``customer_known = false`` and a credit limit of 0; a model that is still
warming up has ``anomaly_scored`` / ``late_payment_scored = false`` and scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(slots=True)  # not frozen: 30 fields set through object.__setattr__ cost ~5 µs per order
class DecisionContext:
    """What is known about an order and its customer at the moment it is decided.

    Amounts are in the base currency. ``exposure`` is the customer's exposure *before* this
    order (open approved orders + open receivables); for an amendment it excludes the order's
    previous amount. ``recent_order_amounts`` are the customer's orders of the last 24 hours
    before this one (``amount_last_day`` their sum). Factors are the features behind a score,
    as text (``"amount_ratio (4.2), hour (3.1)"``), for messages.
    """

    order_amount: float
    exposure: float
    credit_limit: float = 0.0
    customer_known: bool = True
    customer_id: str = ""
    salesperson_id: str = ""
    channel: str = ""
    country: str = ""
    industry: str = ""
    risk_class: str = ""
    on_stop: bool = False
    payment_terms_days: int = 0
    customer_terms_days: int = 0
    max_discount: float = 0.0
    overdue_amount: float = 0.0
    days_past_due: int = 0
    tenure_days: float = 0.0
    previous_orders: int = 0
    orders_last_hour: int = 0
    orders_last_day: int = 0
    amount_last_day: float = 0.0
    recent_order_amounts: tuple[float, ...] = ()
    anomaly_scored: bool = False
    anomaly_score: float = 0.0
    anomaly_factors: str = ""
    late_payment_scored: bool = False
    late_payment_probability: float = 0.0
    late_payment_factors: str = ""
    exposure_after: float = field(init=False)
    utilization_after: float = field(init=False)

    def __post_init__(self) -> None:
        after = self.exposure + self.order_amount
        object.__setattr__(self, "exposure_after", after)
        object.__setattr__(self, "utilization_after", after / self.credit_limit if self.credit_limit > 0 else 0.0)


#: The context's variables and their types, as conditions see them.
CONTEXT_TYPES: dict[str, type] = {
    f.name: {"float": float, "bool": bool, "str": str, "int": int, "tuple[float, ...]": tuple}[str(f.type)]
    for f in fields(DecisionContext)
}
