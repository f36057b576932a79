"""Both models on simulated sales traffic, as the worker runs them: every order is scored by
both models and then learned; every invoice outcome is learned when it becomes known (the
delayed label), after its late-payment probability has been recorded for the ROC AUC.

It measures the models' cost per order and per invoice outcome, as the worker and the trainer
pay it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from river import metrics

from detectors.risk_models import RiskModels
from streams.app import pipeline_config
from streams.backtest import BATCH
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
    examples: list[TrainingExample] = []
    for start in range(0, len(messages), BATCH):  # as a worker's batches: examples in time order
        result = pipeline.process(messages[start:start + BATCH], states.get)
        states.update((customer_id, state) for customer_id, (_, state) in result.changed.items())
        examples += result.examples
    return examples


def progressive_simulated(examples: list[TrainingExample], seed: int, repeats: int = 5,
                          round_size: int = 100) -> dict[str, float]:
    """ROC AUC and log loss of the late-payment probability on the invoices' outcomes
    (progressive: each predicted before it is learned), and the cost, fastest of ``repeats``
    passes, model calls only, split as the system pays it:

    - ``us_per_order``: a worker scoring an order with both models and their reasons (a fixed
      model version, as workers use, ``round_size`` orders at a time as a worker's round of a
      busy batch), plus the trainer learning that order;
    - ``us_per_outcome``: the trainer learning one invoice outcome (with its drift check);
    - ``us_per_order_all_in``: both, the outcomes spread over the orders.

    Building the trees when the first order is learned (once per model, about 0.2 s) is left out.
    """
    orders = [x.features for x in examples if x.kind == "order"]
    salespeople = [x.salesperson_id for x in examples if x.kind == "order"]
    outcomes = [(x.features, bool(x.late)) for x in examples if x.kind == "credit"]
    # An order is scored with its customer's credit features, which only the pipeline's state
    # has; invoices' features at issue stand in for them (same shape, same cost).
    stand_ins = [features for features, _ in outcomes] or [{}]
    credits = [stand_ins[i % len(stand_ins)] for i in range(len(orders))]
    learn_s = outcome_s = score_s = math.inf
    clock = time.perf_counter
    for _ in range(repeats):
        models = RiskModels(seed=seed, anomaly_min_examples=0, credit_min_labels=0)
        auc, loss = metrics.ROCAUC(), metrics.LogLoss()
        learning = learning_outcomes = 0.0
        for example in examples:
            started = clock()
            if example.kind == "order":
                models.learn_order(example.features, example.salesperson_id)  # type: ignore[arg-type]
                if models.order_examples > 1:  # the first order builds the trees: once, not per order
                    learning += clock() - started
            else:
                late = bool(example.late)
                p = models.credit.predict_proba_one(example.features)[True]  # for the AUC, not timed
                started = clock()
                models.learn_credit(example.features, late)
                learning_outcomes += clock() - started
                auc.update(late, p)
                loss.update(late, {True: p, False: 1 - p})
        started = clock()
        for i in range(0, len(orders), round_size):
            models.score_many(orders[i:i + round_size], credits[i:i + round_size],  # type: ignore[arg-type]
                              salespeople[i:i + round_size])
        score_s = min(score_s, clock() - started)
        learn_s, outcome_s = min(learn_s, learning), min(outcome_s, learning_outcomes)
    per_order = (score_s + learn_s) / len(orders) * 1e6
    return {"roc_auc": round(float(auc.get()), 4), "log_loss": round(float(loss.get()), 4),
            "us_per_order": round(per_order, 1),
            "us_per_outcome": round(outcome_s / max(len(outcomes), 1) * 1e6, 1),
            "us_per_order_all_in": round(per_order + outcome_s / len(orders) * 1e6, 1),
            "orders": len(orders), "invoice_outcomes": len(outcomes)}
