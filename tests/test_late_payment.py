"""The credit model on hand-made streams and on real data."""

import random

import pytest
from river import base, linear_model, optim, preprocessing

from detectors import LatePaymentModel
from detectors.datasets import GERMAN_BINS, DatasetMissing, german_credit
from detectors.evaluation import mean_of, progressive_credit


def customer(days_late_avg: float, late_share: float, risk_class: str) -> dict:
    return {"days_late_avg": days_late_avg, "late_share": late_share, "risk_class": risk_class,
            "utilization": 0.5, "industry": "retail"}


def trained(seed: int = 1) -> LatePaymentModel:
    rng = random.Random(seed)
    model = LatePaymentModel(bins={"days_late_avg": [1, 10, 30], "late_share": [0.1, 0.3, 0.6]})
    for _ in range(400):
        late = rng.random() < 0.3
        x = customer(rng.uniform(15, 60) if late else rng.uniform(0, 5), rng.uniform(0.4, 1) if late else
                     rng.uniform(0, 0.2), rng.choice("DE") if late else rng.choice("ABC"))
        model.learn_one(x, late)
    return model


def test_it_is_a_river_classifier_over_plain_dicts_with_missing_values():
    model = LatePaymentModel(bins={"days_late_avg": [1, 10]})
    assert isinstance(model, base.Classifier)
    model.learn_one({"days_late_avg": None, "risk_class": None, "utilization": 0.3}, True)
    p = model.predict_proba_one({"days_late_avg": None, "risk_class": "A"})
    assert 0.0 < p[True] < 1.0 and p[True] + p[False] == pytest.approx(1.0)


def test_a_customer_turning_into_a_late_payer_gets_a_rising_probability():
    model = trained()
    history = [customer(0, 0.0, "B"), customer(8, 0.2, "B"), customer(25, 0.5, "C"), customer(50, 0.8, "C")]
    probabilities = [model.predict_proba_one(x)[True] for x in history]
    assert probabilities == sorted(probabilities) and probabilities[-1] > 0.7 > 0.2 > probabilities[0]


def test_reason_codes_name_the_features_that_push_the_probability_up():
    model = trained()
    reasons = dict(model.reasons(customer(50, 0.8, "E")))
    assert set(reasons) >= {"days_late_avg", "late_share"} and all(v > 0 for v in reasons.values())
    assert model.reasons(customer(0, 0.0, "A")) == [] or all(
        name not in ("days_late_avg", "late_share") for name, _ in model.reasons(customer(0, 0.0, "A")))


def test_rare_categories_are_pulled_towards_no_evidence():
    model = LatePaymentModel(woe_prior=10.0)
    for _ in range(100):
        model.learn_one({"k": "common"}, False)
    model.learn_one({"k": "rare"}, True)
    # one late payer in a category: some evidence, far from the log-odds of "always late"
    assert 0 < dict(model.reasons({"k": "rare"}))["k"] < 2.0


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_without_scorecard_cells_it_is_rivers_scaler_and_logistic_regression(l2):
    """Numbers without bins and no missing values reach the regression only (the scorecard
    stays at even odds): the probability is then river's, computed in arrays."""
    rng = random.Random(3)
    model = LatePaymentModel(learning_rate=0.05, l2=l2)
    scaler = preprocessing.StandardScaler()
    regression = linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=l2)
    for i in range(300):
        x = {"a": rng.gauss(0, 2), "b": rng.uniform(0, 100), "c": float(i % 3 == 0)}
        if i % 7 == 0:
            x["late_a_bit"] = rng.random()  # a feature that comes and goes
        y = rng.random() < (0.8 if x["a"] > 1 else 0.2)
        expected = 0.5 * (0.5 + regression.predict_proba_one(scaler.transform_one(x))[True])
        assert model.predict_then_learn(x, y) == pytest.approx(expected, abs=1e-12)
        scaler.learn_one(x)
        regression.learn_one(scaler.transform_one(x), y)


def test_german_credit_progressive_auc():
    try:
        rows = german_credit()
    except DatasetMissing as exc:
        pytest.fail(f"{exc} (make install provides it)")
    results = [progressive_credit(rows, lambda: LatePaymentModel(bins=GERMAN_BINS), seed) for seed in range(5)]
    mean = mean_of(results)
    assert mean["rows"] == 1000
    # measured 0.7609 (target >= 0.76); fixed seeds make this deterministic
    assert mean["roc_auc"] >= 0.76 and mean["log_loss"] < 0.56
