"""The models a worker scores orders with, as one versioned, serializable unit: the order
anomaly detector, the late-payment model and their drift monitor.

A trainer learns into one :class:`RiskModels` and publishes it as bytes with a new
``version`` (a trainer per kind of example: one learns orders, one invoice outcomes); scoring
workers load those bytes, take each model from the trainer that learns it
(:meth:`RiskModels.combine`) and only score. Loading the same bytes gives
the same scores:

>>> models = RiskModels(seed=1, anomaly_min_examples=1, credit_min_labels=1)
>>> for i in range(50):
...     _ = models.learn_order({"amount_ratio": 1.0 + (i % 5) / 10})
...     _ = models.learn_credit({"late_share": 0.6, "risk_class": "D"}, True)
...     _ = models.learn_credit({"late_share": 0.0, "risk_class": "A"}, False)
>>> models.version = 1
>>> copy = RiskModels.from_bytes(models.to_bytes())
>>> order, credit = {"amount_ratio": 9.0}, {"late_share": 0.5, "risk_class": "D"}
>>> copy.score(order, credit) == models.score(order, credit)
True
>>> copy.score(order, credit).late_payment > 0.8
True
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from detectors.anomaly import OrderAnomalyDetector
from detectors.drift import Drift, DriftMonitor
from detectors.late_payment import LatePaymentModel
from detectors.salespeople import SalespersonHabits

#: Bands of the credit features (see :func:`streams.features.credit_features`) for the scorecard.
CREDIT_BINS: dict[str, list[float]] = {
    "late_share": [0.05, 0.2, 0.5],
    "avg_days_late": [1, 10, 30],
    "invoices_paid": [1, 3, 10],
    "written_off": [1],
    "days_past_due": [1, 15, 30, 60],
    "overdue_share": [0.01, 0.25, 0.5],
    "utilization": [0.5, 0.8, 1.0],
    "tenure_days": [30, 90, 365],
    "order_size_ratio": [0.5, 1.5, 3.0],
}

#: Anomaly scores from which the features that made them high are reported (below, an order
#: is ordinary and there is nothing to explain; above, any review threshold a rule may use).
EXPLAIN_ANOMALY_FROM = 0.5

#: Snapshot header: format tag + SHA-256 of the pickled body (detects a corrupted or cut value).
_MAGIC = b"SGRM3"


class ModelSnapshotError(Exception):
    """Bytes that are not an intact :class:`RiskModels` snapshot."""


class Scores(NamedTuple):
    """Scores of one order. A score is ``None`` while its model has learned too little to mean
    anything; factors are ``(feature, strength)``, strongest first (anomaly factors only from
    ``EXPLAIN_ANOMALY_FROM``)."""

    anomaly: float | None = None
    anomaly_factors: tuple[tuple[str, float], ...] = ()
    late_payment: float | None = None
    late_payment_factors: tuple[tuple[str, float], ...] = ()


@dataclass
class RiskModels:
    """Anomaly detector + late-payment model + drift monitor, with counters and a version.

    ``anomaly_min_examples`` / ``credit_min_labels``: learned orders / labelled invoices before
    the respective score is reported (and can trigger a rule).
    """

    seed: int = 0
    anomaly_min_examples: int = 1000
    credit_min_labels: int = 100
    version: int = 0
    order_examples: int = 0
    credit_examples: int = 0
    late_labels: int = 0
    #: In models combined for scoring (see :meth:`combine`): the credit part's version, while
    #: ``version`` is the order part's.
    credit_version: int | None = None
    anomaly: OrderAnomalyDetector = field(init=False)
    credit: LatePaymentModel = field(init=False)
    drift: DriftMonitor = field(init=False)
    salespeople: SalespersonHabits = field(init=False)

    def __post_init__(self) -> None:
        self.anomaly = OrderAnomalyDetector(seed=self.seed, protect_above=0.995)
        self.salespeople = SalespersonHabits()
        self.credit = LatePaymentModel(bins=CREDIT_BINS)
        self.drift = DriftMonitor(min_examples=max(self.anomaly_min_examples, self.credit_min_labels))

    @property
    def label(self) -> str:
        """The version as recorded in decisions, e.g. ``models-12``; combined models name both
        parts' versions, e.g. ``models-12.9`` (orders' version 12, invoice outcomes' version 9)."""
        if self.credit_version is None:
            return f"models-{self.version}"
        return f"models-{self.version}.{self.credit_version}"

    @classmethod
    def combine(cls, order: RiskModels, credit: RiskModels) -> RiskModels:
        """The models to score with, from two trainers' versions: the anomaly detector and the
        salespeople's habits of ``order`` (which learned the orders), the late-payment model of
        ``credit`` (which learned the invoice outcomes). The drift monitor is ``order``'s; only
        trainers use it.

        >>> order, credit = RiskModels(version=3), RiskModels(version=5)
        >>> models = RiskModels.combine(order, credit)
        >>> models.label, models.anomaly is order.anomaly, models.credit is credit.credit
        ('models-3.5', True, True)
        """
        models = copy.copy(order)
        models.credit, models.credit_version = credit.credit, credit.version
        models.credit_examples, models.late_labels = credit.credit_examples, credit.late_labels
        return models

    def order_view(self, order: Mapping[str, float], salesperson: str | None) -> dict[str, float]:
        """The order's features for the anomaly detector: those from its customer's history
        plus how it compares with its salesperson's habits."""
        return self.salespeople.compare(salesperson, order, into=dict(order))

    def score(self, order: Mapping[str, float], credit: Mapping[str, Any], salesperson: str | None = None) -> Scores:
        """Score one order: ``order`` are its anomaly features (see
        :func:`streams.features.order_features`), ``credit`` its customer's credit features,
        ``salesperson`` who took it."""
        return self.score_many([order], [credit], [salesperson])[0]

    def score_many(self, orders: Sequence[Mapping[str, float]], credits: Sequence[Mapping[str, Any]],
                   salespeople: Sequence[str | None]) -> list[Scores]:
        """:meth:`score` of several orders, each model's compiled steps called once for all."""
        n = len(orders)
        anomaly: list[tuple[float | None, tuple[tuple[str, float], ...]]] = [(None, ())] * n
        if self.order_examples >= self.anomaly_min_examples:
            views = list(map(self.order_view, orders, salespeople))
            anomaly = [(round(score, 4), tuple(reasons))
                       for score, reasons in self.anomaly.explain_many(views, EXPLAIN_ANOMALY_FROM)]
        late: list[tuple[float | None, tuple[tuple[str, float], ...]]] = [(None, ())] * n
        if self.credit_examples >= self.credit_min_labels:
            late = [(round(p_late, 4), tuple(reasons)) for p_late, reasons in self.credit.explain_many(credits)]
        return [Scores(score, factors, p_late, late_factors)
                for (score, factors), (p_late, late_factors) in zip(anomaly, late, strict=True)]

    def learn_order(self, order: Mapping[str, float], salesperson: str | None = None) -> Drift | None:
        """Learn one order; returns a drift of the score stream, if any."""
        _, score = self.anomaly.score_then_learn(self.order_view(order, salesperson))
        drift = self.drift.anomaly_score(score)
        self.salespeople.learn(salesperson, order)
        self.order_examples += 1
        return drift

    def learn_credit(self, credit: Mapping[str, Any], late: bool) -> tuple[float, Drift | None]:
        """Learn one invoice outcome (``late``: paid more than N days late or written off) from
        the credit features snapshotted when it was issued; returns the probability the model
        gave before learning it (progressive validation) and a drift of the error, if any."""
        predicted = self.credit.predict_then_learn(credit, late)
        drift = self.drift.credit_error(abs(float(late) - predicted))
        self.credit_examples += 1
        self.late_labels += int(late)
        return predicted, drift

    def to_bytes(self) -> bytes:
        """Serialized snapshot (pickle behind a checksum). Only load snapshots from a store you
        trust: unpickling runs code."""
        body = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        return _MAGIC + hashlib.sha256(body).digest() + body

    @classmethod
    def from_bytes(cls, data: bytes) -> RiskModels:
        """Inverse of :meth:`to_bytes`; raises :class:`ModelSnapshotError` on damaged bytes."""
        header, digest, body = data[:len(_MAGIC)], data[len(_MAGIC):len(_MAGIC) + 32], data[len(_MAGIC) + 32:]
        if header != _MAGIC or hashlib.sha256(body).digest() != digest:
            raise ModelSnapshotError("not an intact salesguard model snapshot (bad header or checksum)")
        models = pickle.loads(body)  # noqa: S301 - checksummed, from the operator's own store
        if not isinstance(models, cls):
            raise ModelSnapshotError(f"snapshot holds a {type(models).__name__}, not RiskModels")
        return models
