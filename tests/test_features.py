from detectors import LatePaymentModel, OrderAnomalyDetector
from streams.exposure import DAY, CustomerState, Profile
from streams.features import NO_PREVIOUS_ORDER_DAYS, credit_features, order_features


def customer(terms: int = 30) -> CustomerState:
    state = CustomerState("C1")
    state.set_profile("p", Profile("n", 10_000_00, "B", "DE", "retail", terms, False, 0.0))
    return state


def features(state: CustomerState, amount: int = 100_00, at: float = 0.0, **overrides):
    args = dict(amount=amount, at=at, payment_terms_days=30, ship_to_country="DE", max_discount=0.0, hour=10.0,
                weekday=1.0)
    return order_features(state, **{**args, **overrides})


def test_first_order_of_a_new_customer():
    f = features(customer())
    assert f["first_orders"] == 1.0 and f["amount_ratio"] == 1.0
    assert f["days_since_last_order"] == NO_PREVIOUS_ORDER_DAYS and f["orders_last_day"] == 0.0


def test_unusual_terms_country_and_velocity_show_up():
    state = customer(terms=30)
    for i in range(5):
        state.place_order(f"SO-{i}", f"e{i}", 100_00, at=10 * DAY + i * 600)
    f = features(state, at=10 * DAY + 3000, payment_terms_days=90, ship_to_country="NG")
    assert f["terms_ratio"] == 3.0 and f["new_ship_to_country"] == 1.0
    assert f["orders_last_hour"] == 5.0 and f["orders_last_day"] == 5.0
    assert f["days_since_last_order"] < 0.01


def test_credit_features_follow_payment_history_and_overdue():
    state = customer()
    state.place_order("SO-1", "e1", 1_000_00, at=0)
    state.issue_invoice("I-1", "e2", "SO-1", 1_000_00, due=10 * DAY, at=0)
    state.issue_invoice("I-2", "e3", None, 500_00, due=10 * DAY, at=0)
    state.apply_payment("P-1", "I-2", 500_00, at=20 * DAY)  # 10 days late
    f = credit_features(state, at=40 * DAY, order_amount=2_000_00)
    assert f["late_share"] == 1.0 and f["avg_days_late"] == 10.0
    assert f["days_past_due"] == 30.0 and f["overdue_share"] == 1.0
    assert f["utilization"] == 0.1 and f["order_size_ratio"] == 2.0 and f["risk_class"] == "B"


def test_the_detectors_accept_these_features_as_they_are():
    state = customer()
    detector, model = OrderAnomalyDetector(seed=0), LatePaymentModel()
    f, c = features(state), credit_features(state, at=0.0)
    detector.learn_one(f)
    model.learn_one(c, False)
    assert 0.0 <= detector.score_one(f) <= 1.0 and 0.0 < model.predict_proba_one(c)[True] < 1.0
