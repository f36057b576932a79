"""What the models learn from and what they report (topics ``model-examples``, ``model-alerts``).

The pipeline publishes a :class:`TrainingExample` for every decided order (anomaly features)
and for every invoice whose outcome became known (the credit features snapshotted when it was
issued, with the label). Each kind has a partition of its own (:data:`EXAMPLE_PARTITIONS`) and a
trainer of its own, so two workers can train the two models; ``example_id`` is stable, so a
redelivered example is learned once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from streams.contracts.common import SCHEMA_VERSION, Contract, Identifier

#: The kind of example each ``model-examples`` partition holds: order examples train the anomaly
#: detector, credit examples the late-payment model, each in the trainer of its partition.
EXAMPLE_KINDS: tuple[str, ...] = ("order", "credit")
#: The partition of each kind of example.
EXAMPLE_PARTITIONS: dict[str, int] = {kind: partition for partition, kind in enumerate(EXAMPLE_KINDS)}

#: Feature values: numbers, strings for categories, ``None`` for missing.
FeatureValue = float | str | None


class TrainingExample(Contract):
    """One thing to learn. ``kind="order"``: anomaly features of a decided order (no label) and
    its salesperson.
    ``kind="credit"``: an invoice's credit features and whether it was paid more than the
    configured number of days late or written off (``late``), with ``days_late`` at labelling."""

    schema_version: Literal[1] = SCHEMA_VERSION
    example_id: str
    kind: Literal["order", "credit"]
    customer_id: Identifier
    salesperson_id: Identifier | None = None
    features: dict[str, FeatureValue]
    late: bool | None = None
    days_late: float | None = None
    event_time: datetime

    @property
    def order_features(self) -> dict[str, float]:
        """The features of an order example: numbers only (an order's anomaly features)."""
        return cast("dict[str, float]", self.features)


class ModelAlert(Contract):
    """A model's monitored signal drifted: the credit model's error rose, or the anomaly score
    distribution of incoming orders moved (ADWIN)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["model.drift"] = "model.drift"
    alert_id: str
    model: Literal["credit", "anomaly"]
    signal: Literal["error", "score"]
    mean_before: float
    mean_after: float
    examples_seen: int
    model_version: str
    detected_at: datetime
