"""The portfolio metrics: totals, utilization bands, open holds and the oldest hold's age."""

from prometheus_client import REGISTRY

from monitoring.portfolio import measure, publish
from streams.exposure import DAY, CustomerState, Profile


def customer(cid: str, limit: int | None) -> CustomerState:
    profile = Profile(cid, limit, "B", "DE", "retail", 30, False, 0.0) if limit is not None else None
    return CustomerState(cid, profile=profile)


def test_bands_totals_holds_and_the_gauges_they_set():
    low, over, unknown = customer("C1", 1000_00), customer("C2", 1000_00), customer("C3", None)
    low.place_order("SO-1", "e1", amount=100_00, at=0.0)
    over.place_order("SO-2", "e2", amount=1600_00, at=0.0)
    over.place_order("SO-3", "e3", amount=50_00, at=2 * DAY, status="held")
    unknown.place_order("SO-4", "e4", amount=10_00, at=1 * DAY, status="held")
    _ = over.issue_invoice("I-1", "e5", "SO-2", 1600_00, due=3 * DAY, at=1 * DAY)
    portfolio = measure([low, over, unknown], as_of=4 * DAY)
    assert (portfolio.customers, portfolio.exposure, portfolio.credit_limits, portfolio.overdue) == (
        3, 1700.0, 2000.0, 1600.0)
    assert portfolio.utilization_bands == {"<50%": 1, "50-80%": 0, "80-100%": 0, "100-150%": 0, ">150%": 1,
                                           "no limit": 1}
    assert (portfolio.open_holds, portfolio.oldest_hold_age_s) == (2, 3 * DAY)
    publish(portfolio)
    assert REGISTRY.get_sample_value("salesguard_customers_by_utilization", {"band": ">150%"}) == 1
    assert REGISTRY.get_sample_value("salesguard_oldest_hold_age_seconds") == 3 * DAY
    assert REGISTRY.get_sample_value("salesguard_exposure") == 1700.0


def test_an_empty_worker_measures_zero():
    portfolio = measure([], as_of=0.0)
    assert (portfolio.customers, portfolio.open_holds, portfolio.oldest_hold_age_s) == (0, 0, 0.0)
