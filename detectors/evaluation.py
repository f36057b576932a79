"""Progressive validation: predict each row, then learn it, in an order shuffled by a seed —
how an online model is judged on data it has not seen yet."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from river import metrics

from detectors.anomaly import OrderAnomalyDetector
from detectors.late_payment import LatePaymentModel

Rows = Sequence[tuple[dict[str, Any], bool]]


def progressive_credit(rows: Rows, make_model: Callable[[], LatePaymentModel], seed: int) -> dict[str, float]:
    """ROC AUC, log loss and microseconds per row (predict + learn, model calls only) of a
    credit model."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    model, auc, loss = make_model(), metrics.ROCAUC(), metrics.LogLoss()
    elapsed, clock = 0.0, time.perf_counter
    for x, y in order:
        started = clock()
        p = model.predict_then_learn(x, y)
        elapsed += clock() - started
        auc.update(y, p)
        loss.update(y, {True: p, False: 1 - p})
    return {"roc_auc": round(float(auc.get()), 4), "log_loss": round(float(loss.get()), 4),
            "us_per_event": round(elapsed / len(order) * 1e6, 1), "rows": len(order)}


def mean_of(results: Sequence[dict[str, float]]) -> dict[str, float]:
    """Field-wise mean of several runs' results."""
    return {key: round(math.fsum(r[key] for r in results) / len(results), 4) for key in results[0]}


def progressive_anomaly(
    rows: Iterable[tuple[dict[str, float], bool]],
    make_detector: Callable[[], OrderAnomalyDetector],
    limit: int | None = None,
) -> dict[str, float]:
    """ROC AUC of the calibrated [0, 1] score and of the raw score, and microseconds per row
    (score + learn, model calls only), in the data's own order (a stream: Shuttle is a time
    series of readings)."""
    detector, auc, raw_auc = make_detector(), metrics.ROCAUC(), metrics.ROCAUC()
    elapsed, count, clock = 0.0, 0, time.perf_counter
    for x, y in itertools.islice(rows, limit):
        started = clock()
        raw, score = detector.score_then_learn(x)
        elapsed += clock() - started
        auc.update(y, score)
        raw_auc.update(y, raw)
        count += 1
    return {"roc_auc": round(float(auc.get()), 4), "raw_roc_auc": round(float(raw_auc.get()), 4),
            "us_per_event": round(elapsed / count * 1e6, 1), "rows": count}
