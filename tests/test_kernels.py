"""The compiled module the models call (``detectors._kernels``, built at install) is the code of
``detectors/kernels.py``: the same models give bit-identical scores either way. (Fails when the
module was not rebuilt after a change to the source: ``pip install -e .`` rebuilds it.)"""

import pytest

from detectors import _kernels, anomaly, hst, kernels, late_payment, rolling_rank
from detectors.risk_models import RiskModels
from streams import model_evaluation


def run_models() -> list[object]:
    """Learn simulated traffic, scoring every order and outcome before it is learned."""
    models = RiskModels(seed=3, anomaly_min_examples=50, credit_min_labels=20)
    seen: list[object] = []
    for example in model_evaluation.simulated_examples(seed=4, events=3000, late_payment_days=10):
        if example.kind == "order":
            scores = models.score(example.order_features, {}, example.salesperson_id)
            raw = models.anomaly.raw_score(models.order_view(example.order_features, example.salesperson_id))
            seen.append((raw, scores.anomaly, scores.anomaly_factors))
            models.learn_order(example.order_features, example.salesperson_id)
        else:
            seen.append(models.learn_credit(example.features, bool(example.late))[0])
    return seen


def test_the_compiled_kernels_score_exactly_as_their_source_run_by_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = run_models()
    for module in (hst, anomaly, late_payment):
        for name in vars(_kernels):
            if not name.startswith("_") and hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(kernels, name))
    monkeypatch.setattr(rolling_rank, "_kernels", kernels)
    assert hst.hst_score is kernels.hst_score and late_payment.late_payment_learn is kernels.late_payment_learn
    jit = run_models()
    assert len(compiled) > 1000 and compiled == jit
