"""The credit portfolio a worker holds, summed over its customers for the metrics: exposure
against limits, how many customers sit in each utilization band, open holds and the oldest
one's age. No per-customer label: the cardinality stays fixed however many customers there are.

>>> from streams.exposure import CustomerState, Profile
>>> state = CustomerState("C1", profile=Profile("C1", 1000_00, "B", "DE", "retail", 30, False, 0.0))
>>> state.place_order("SO-1", "e1", amount=900_00, at=0.0)
True
>>> state.place_order("SO-2", "e2", amount=300_00, at=600.0, status="held")
True
>>> p = measure([state], as_of=3600.0)
>>> p.exposure, p.utilization_bands["80-100%"], p.open_holds, p.oldest_hold_age_s
(900.0, 1, 1, 3000.0)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitoring import metrics
from streams.exposure import CustomerState
from streams.money import units

#: Utilization bands (upper edges, exclusive) and their labels; customers without a limit apart.
BANDS = ((0.5, "<50%"), (0.8, "50-80%"), (1.0, "80-100%"), (1.5, "100-150%"), (float("inf"), ">150%"))
NO_LIMIT = "no limit"


@dataclass(frozen=True)
class Portfolio:
    """Totals in the base currency; hold age in event time (seconds before ``as_of``)."""

    customers: int = 0
    exposure: float = 0.0
    credit_limits: float = 0.0
    overdue: float = 0.0
    utilization_bands: dict[str, int] = field(default_factory=dict)
    open_holds: int = 0
    oldest_hold_age_s: float = 0.0


class PortfolioTally:
    """Portfolio totals added up one customer at a time (so a pass over many customers can be
    spread out, letting the stream run in between)."""

    def __init__(self, as_of: float) -> None:
        self.as_of = as_of
        self.customers = self.exposure = self.limits = self.overdue = self.holds = 0
        self.oldest = as_of
        self.bands = dict.fromkeys([label for _, label in BANDS] + [NO_LIMIT], 0)

    def add(self, state: CustomerState) -> None:
        """Count one customer's state."""
        self.customers += 1
        owed = state.exposure()
        self.exposure += owed
        self.overdue += state.overdue(self.as_of)[0]
        limit = state.profile.credit_limit if state.profile is not None else 0
        self.limits += limit
        if limit > 0:
            self.bands[next(label for edge, label in BANDS if owed / limit < edge)] += 1
        else:
            self.bands[NO_LIMIT] += 1
        for order in state.held_orders().values():
            self.holds += 1
            self.oldest = min(self.oldest, order.placed_at)

    def portfolio(self) -> Portfolio:
        """The totals so far."""
        return Portfolio(self.customers, units(self.exposure), units(self.limits), units(self.overdue),
                         dict(self.bands), self.holds, max(0.0, self.as_of - self.oldest) if self.holds else 0.0)


def measure(states: Iterable[CustomerState], as_of: float) -> Portfolio:
    """Sum up the customers' states as of event time ``as_of``."""
    tally = PortfolioTally(as_of)
    for state in states:
        tally.add(state)
    return tally.portfolio()


def publish(portfolio: Portfolio) -> None:
    """Set the portfolio gauges."""
    metrics.CUSTOMERS.set(portfolio.customers)
    metrics.EXPOSURE.set(portfolio.exposure)
    metrics.CREDIT_LIMITS.set(portfolio.credit_limits)
    metrics.OVERDUE.set(portfolio.overdue)
    for band, count in portfolio.utilization_bands.items():
        metrics.UTILIZATION_BANDS.labels(band).set(count)
    metrics.OPEN_HOLDS.set(portfolio.open_holds)
    metrics.OLDEST_HOLD_AGE.set(portfolio.oldest_hold_age_s)
