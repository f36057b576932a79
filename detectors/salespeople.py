"""Each salesperson's habits — usual discount and order size across all their customers — so
an order can be compared with its salesperson's habits, not only its customer's. Learned by the
trainer, which sees every order, and shipped inside each model version.

>>> habits = SalespersonHabits(min_orders=2)
>>> for _ in range(3):
...     habits.learn("S-1", {"max_discount": 0.0, "log_amount": 7.0})
>>> habits.compare("S-1", {"max_discount": 0.3, "log_amount": 9.0})
{'discount_vs_salesperson': 0.3, 'amount_vs_salesperson': 2.0}
>>> habits.compare("S-9", {"max_discount": 0.3, "log_amount": 9.0})  # not known yet: no evidence
{'discount_vs_salesperson': 0.0, 'amount_vs_salesperson': 0.0}
"""

from __future__ import annotations

from collections.abc import Mapping


class SalespersonHabits:
    """Running mean discount and log order amount per salesperson. ``min_orders``: orders of a
    salesperson before comparisons count (before, the differences are 0: no evidence)."""

    def __init__(self, min_orders: int = 5) -> None:
        self.min_orders = min_orders
        self._habits: dict[str, list[float]] = {}  # salesperson -> [orders, mean discount, mean log amount]

    def compare(self, salesperson: str | None, order: Mapping[str, float],
                into: dict[str, float] | None = None) -> dict[str, float]:
        """How far the order's discount and (log) amount are above the salesperson's usual,
        added to ``into`` when given (which is returned)."""
        view = {} if into is None else into
        habit = self._habits.get(salesperson) if salesperson is not None else None
        if habit is None or habit[0] < self.min_orders:
            view["discount_vs_salesperson"] = view["amount_vs_salesperson"] = 0.0
        else:
            view["discount_vs_salesperson"] = order["max_discount"] - habit[1]
            view["amount_vs_salesperson"] = order["log_amount"] - habit[2]
        return view

    def learn(self, salesperson: str | None, order: Mapping[str, float]) -> None:
        """Count one more order of ``salesperson``."""
        if salesperson is None:
            return
        habit = self._habits.setdefault(salesperson, [0.0, 0.0, 0.0])
        habit[0] += 1
        habit[1] += (order["max_discount"] - habit[1]) / habit[0]
        habit[2] += (order["log_amount"] - habit[2]) / habit[0]

    def __len__(self) -> int:
        return len(self._habits)
