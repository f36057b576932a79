"""Both models on simulated sales traffic, as the worker runs them: every order is scored by
both models and then learned; every invoice outcome is learned when it becomes known (the
delayed label), after its late-payment probability has been recorded for the ROC AUC.

This is the cost per order of the learning part of the pipeline (``us_per_order``: scoring
both models, learning the order, and learning invoice outcomes spread over the orders).
"""

from __future__ import annotations

import math
import time
from typing import Any

from river import metrics

from detectors.risk_models import RiskModels
from streams.app import pipeline_config
from streams.contracts import TrainingExample
from streams.generator import SalesSimulator
from streams.pipeline import Pipeline, RawMessage
from streams.settings import Settings


def simulated_examples(seed: int, events: int, late_payment_days: int = 30) -> list[TrainingExample]:
    """The training examples the pipeline emits for ``events`` simulated events, in order."""
    pipeline = Pipeline(pipeline_config(Settings(late_payment_days=late_payment_days)), clock=lambda: 0.0)
    messages = [RawMessage(m.topic, 0, i, m.key, m.value, 0.0)
                for i, m in enumerate(SalesSimulator(seed=seed, total_events=events, bad_rate=0.0))]
    states: dict[str, Any] = {}
    result = pipeline.process(messages, states.get)
    return result.examples


def progressive_simulated(examples: list[TrainingExample], seed: int, repeats: int = 3) -> dict[str, float]:
    """ROC AUC and log loss of the late-payment probability on the invoices' outcomes, and the
    fastest of ``repeats`` timed passes in microseconds per order."""
    orders = sum(1 for x in examples if x.kind == "order")
    # An order is scored with its customer's credit features, which only the pipeline's state
    # has; the latest invoice's features stand in for them (same shape, same cost).
    credit_x = next((x.features for x in examples if x.kind == "credit"), {})
    best = math.inf
    for _ in range(repeats):
        models = RiskModels(seed=seed, anomaly_min_examples=0, credit_min_labels=0)
        auc, loss = metrics.ROCAUC(), metrics.LogLoss()
        started = time.perf_counter()
        for example in examples:
            if example.kind == "order":
                models.score(example.features, credit_x)  # type: ignore[arg-type]
                models.learn_order(example.features)  # type: ignore[arg-type]
            else:
                credit_x = example.features
                p = models.credit.predict_proba_one(example.features)[True]
                auc.update(bool(example.late), p)
                loss.update(bool(example.late), {True: p, False: 1 - p})
                models.learn_credit(example.features, bool(example.late))
        best = min(best, time.perf_counter() - started)
    credit = len(examples) - orders
    return {"roc_auc": round(float(auc.get()), 4), "log_loss": round(float(loss.get()), 4),
            "us_per_order": round(best / orders * 1e6, 1), "orders": orders, "invoice_outcomes": credit}
