"""What the models learn from and what they report (topics ``model-examples``, ``model-alerts``).

The pipeline publishes a :class:`TrainingExample` for every decided order (anomaly features)
and for every invoice whose outcome became known (the credit features snapshotted when it was
issued, with the label). Each kind has a partition of its own (:data:`EXAMPLE_PARTITIONS`) and a
trainer of its own, so two workers can train the two models; ``example_id`` is stable, so a
redelivered example is learned once. A batch's examples of a kind travel together, up to
:data:`EXAMPLES_PER_RECORD` in one record: a JSON array (:func:`example_records`,
:func:`read_example_record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, NamedTuple, cast

import orjson
from pydantic import TypeAdapter, ValidationError

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


#: Most examples in one ``model-examples`` record (~0.3-0.6 KB each: records stay well under a
#: broker's usual 1 MB limit). With a record per example, producing, fetching and acknowledging
#: them took 7-10 % more of a worker's CPU (a probe, ``bench --events 100000``, 5 Dec), and the
#: trainers learned alone at the end of a backlog for ~1.5 times as long.
EXAMPLES_PER_RECORD = 250
#: A ``model-examples`` record: a JSON array of examples of its partition's kind.
EXAMPLE_RECORD: TypeAdapter[list[TrainingExample]] = TypeAdapter(list[TrainingExample])


class ExampleRecord(NamedTuple):
    """A ``model-examples`` record to publish: its kind, partition, value, and how many examples
    the value holds."""

    kind: str
    partition: int
    value: bytes
    examples: int


def example_records(examples: Sequence[TrainingExample]) -> list[ExampleRecord]:
    """``examples`` as ``model-examples`` records: each kind's in order, at most
    :data:`EXAMPLES_PER_RECORD` to a record.

    >>> x = TrainingExample(example_id="order:e1", kind="order", customer_id="C1", features={},
    ...                     event_time="2026-01-01T00:00:00Z")
    >>> [(r.kind, r.partition, r.examples, len(orjson.loads(r.value))) for r in example_records([x] * 300)]
    [('order', 0, 250, 250), ('order', 0, 50, 50)]
    """
    by_kind: dict[str, list[TrainingExample]] = {}
    for example in examples:
        by_kind.setdefault(example.kind, []).append(example)
    records = []
    for kind, of_kind in by_kind.items():
        for start in range(0, len(of_kind), EXAMPLES_PER_RECORD):
            chunk = of_kind[start:start + EXAMPLES_PER_RECORD]
            records.append(ExampleRecord(kind, EXAMPLE_PARTITIONS[kind], EXAMPLE_RECORD.dump_json(chunk), len(chunk)))
    return records


def read_example_record(value: bytes, partition: int) -> tuple[list[TrainingExample], list[tuple[bytes, str]]]:
    """The examples in a ``model-examples`` record of ``partition``, and what cannot be learned,
    each as ``(raw, reason)``: a record that is not a JSON array, an element that is not a valid
    example, an example of another kind than the partition's (as its contract's JSON). A record
    of one example (a JSON object, as workers wrote them before 5 Dec 2026 07:00) is read as such.

    >>> read_example_record(b'[{"example_id": "x"}]', 0)[1][0][1].splitlines()[0]
    'example 0 of the record is not valid: 4 validation errors for TrainingExample'
    """
    if partition >= len(EXAMPLE_KINDS):
        return [], [(value, f"partition {partition} holds no kind of example (kinds: {', '.join(EXAMPLE_KINDS)})")]
    rejected: list[tuple[bytes, str]] = []
    try:
        examples = EXAMPLE_RECORD.validate_json(value)
    except ValidationError:  # find the bad ones, learn the rest
        try:
            items = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return [], [(value, f"not JSON: {exc}")]
        if isinstance(items, dict):
            items = [items]
        elif not isinstance(items, list):
            return [], [(value, "not a JSON array of training examples")]
        examples = []
        for i, item in enumerate(items):
            try:
                examples.append(TrainingExample.model_validate(item))
            except ValidationError as exc:
                rejected.append((orjson.dumps(item), f"example {i} of the record is not valid: {exc}"))
    kind = EXAMPLE_KINDS[partition]
    rejected += [(x.__pydantic_serializer__.to_json(x),
                  f"an example of kind {x.kind!r} on the partition of {kind!r} examples (partition {partition}): "
                  "it would not be learned") for x in examples if x.kind != kind]
    return [x for x in examples if x.kind == kind], rejected
